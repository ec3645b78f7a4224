/**
 * The API reference (`npm run docs`, typedoc.json) as a specification of the public API's
 * documentation: TypeDoc converts both entry points package.json exports with no error or
 * warning, and every class a user can import has an `@example` that is valid TypeScript.
 * Converting only (no HTML) takes 15 to 25 s on two cores, most of it building the TypeScript program.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Application, Comment, Logger, LogLevel, PackageJsonReader, ReflectionKind, TSConfigReader, TypeDocReader, type ProjectReflection } from "typedoc";
import ts from "typescript";
import { projectRoot } from "../../../src/workers/paths.ts";

/** Keeps every message TypeDoc logs, so a failure can quote them. */
class RecordingLogger extends Logger {
  readonly messages: { level: LogLevel; text: string }[] = [];
  override log(message: string, level: LogLevel): void {
    super.log(message, level);
    this.messages.push({ level, text: message });
  }
}

const fencedCode = /```[a-z]*\n([\s\S]*?)```/g;

/** The code of each `@example` block of a comment (TypeDoc fences an example written without a fence). */
function examplesOf(comment: Comment | undefined): string[] {
  return (comment?.blockTags ?? []).filter((t) => t.tag === "@example").flatMap((t) => [...Comment.combineDisplayParts(t.content).matchAll(fencedCode)].map((m) => m[1]!));
}

describe("API reference", () => {
  let project: ProjectReflection | undefined;
  let logger: RecordingLogger;

  before(async () => {
    // The readers `typedoc` on the command line uses, without its arguments reader (argv is the test runner's).
    const app = await Application.bootstrapWithPlugins({ options: join(projectRoot, "typedoc.json") }, [new TypeDocReader(), new PackageJsonReader(), new TSConfigReader()]);
    const optionProblems = app.logger.errorCount + app.logger.warningCount;
    logger = new RecordingLogger();
    app.logger = logger;
    assert.equal(optionProblems, 0, "typedoc.json has option errors or warnings (logged above)");
    project = await app.convert();
    if (project) app.validate(project);
  });

  it("converts both entry points with no error or warning", () => {
    const problems = logger.messages.filter((m) => m.level === LogLevel.Error || m.level === LogLevel.Warn).map((m) => m.text);
    assert.ok(project, `the conversion failed:\n${problems.join("\n")}`);
    assert.deepEqual(problems, [], `TypeDoc reported ${problems.length} problem(s):\n${problems.join("\n")}`);
  });

  it("names each module as package.json exports it", () => {
    const modules = project!.children!.filter((c) => c.kindOf(ReflectionKind.Module)).map((m) => m.name);
    assert.deepEqual(modules.sort(), ["serverless-tf", "serverless-tf/cdk"]);
  });

  it("gives every class a user can import an @example", () => {
    const classes = project!.getReflectionsByKind(ReflectionKind.Class);
    // Both entry points export classes (the API's stages, the construct): none found means the walk looked nowhere.
    for (const module of ["serverless-tf", "serverless-tf/cdk"]) {
      assert.ok(classes.some((c) => c.parent?.name === module), `no class found in module ${module}`);
    }
    const missing = classes.filter((c) => examplesOf(c.comment).length === 0).map((c) => c.getFriendlyFullName());
    assert.deepEqual(missing, [], `class(es) without an @example in their doc comment: ${missing.join(", ")}`);
  });

  it("writes every @example as TypeScript that parses", () => {
    const broken: string[] = [];
    let examples = 0;
    // Every reflection: classes, members, and the signatures a method's comment sits on.
    for (const reflection of Object.values(project!.reflections)) {
      for (const code of examplesOf(reflection.comment)) {
        examples += 1;
        const { diagnostics = [] } = ts.transpileModule(code, { reportDiagnostics: true, fileName: "example.ts", compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
        for (const d of diagnostics) broken.push(`${reflection.getFriendlyFullName()}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}\n${code}`);
      }
    }
    assert.ok(examples > 0, "no @example found to check");
    assert.deepEqual(broken, [], `@example(s) that do not parse:\n${broken.join("\n\n")}`);
  });
});
