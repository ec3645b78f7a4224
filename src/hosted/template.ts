/**
 * A synthesized CloudFormation template read as the hosted stack needs it: the intrinsic
 * functions CDK emits (Ref, Fn::GetAtt, Fn::Join, Fn::Sub) resolved against the physical ids the
 * hosted stack gave its resources, and the functions and event source mappings as Lambda would
 * configure them. Pure: no I/O.
 */
import { ServerlessTfError } from "../errors.ts";

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Readonly<Record<string, unknown>>;
  readonly Metadata?: Readonly<Record<string, unknown>>;
}

export interface CfnTemplate {
  readonly Resources: Readonly<Record<string, CfnResource>>;
  readonly Outputs?: Readonly<Record<string, { readonly Value: unknown }>>;
}

/** A resource's physical id (what `Ref` returns) and the attributes `Fn::GetAtt` may read. */
export interface Physical {
  readonly ref: string;
  readonly attrs?: Readonly<Record<string, string>>;
}

export interface Pseudo {
  readonly region: string;
  readonly accountId: string;
  readonly stackName: string;
}

/** The template uses something the hosted stack cannot give it a value for. */
export class TemplateError extends ServerlessTfError {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}. The hosted stack resolves Ref, Fn::GetAtt, Fn::Join and Fn::Sub over the resources it creates (src/hosted/deploy.ts); add the resource type there.`);
  }
}

/**
 * Resolves the intrinsic functions in `value`.
 *
 * @example
 * resolveValue({ "Fn::Join": [",", [{ Ref: "A" }, "b"]] }, new Map([["A", { ref: "a" }]]), pseudo, "Env.X"); // "a,b"
 */
export function resolveValue(value: unknown, physical: ReadonlyMap<string, Physical>, pseudo: Pseudo, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => resolveValue(v, physical, pseudo, `${path}[${i}]`));
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const [key, arg] = entries[0] ?? [];
  if (entries.length === 1 && key === "Ref") return refOf(String(arg), physical, pseudo, path);
  if (entries.length === 1 && key === "Fn::GetAtt") {
    const [id, attr] = arg as [string, string];
    const found = physical.get(id)?.attrs?.[attr];
    if (found === undefined) throw new TemplateError(path, `Fn::GetAtt ${id}.${attr} has no value`);
    return found;
  }
  if (entries.length === 1 && key === "Fn::Join") {
    const [sep, parts] = arg as [string, unknown[]];
    return (resolveValue(parts, physical, pseudo, path) as unknown[]).map(String).join(sep);
  }
  if (entries.length === 1 && key === "Fn::Sub") {
    const [text, vars] = (typeof arg === "string" ? [arg, {}] : arg) as [string, Record<string, unknown>];
    return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
      if (name in vars) return String(resolveValue(vars[name], physical, pseudo, path));
      const dot = name.indexOf(".");
      return dot > 0 && !name.startsWith("AWS::") ? String(resolveValue({ "Fn::GetAtt": [name.slice(0, dot), name.slice(dot + 1)] }, physical, pseudo, path)) : refOf(name, physical, pseudo, path);
    });
  }
  if (key?.startsWith("Fn::")) throw new TemplateError(path, `${key} is not supported`);
  return Object.fromEntries(entries.map(([k, v]) => [k, resolveValue(v, physical, pseudo, `${path}.${k}`)]));
}

function refOf(id: string, physical: ReadonlyMap<string, Physical>, pseudo: Pseudo, path: string): string {
  switch (id) {
    case "AWS::Region":
      return pseudo.region;
    case "AWS::AccountId":
      return pseudo.accountId;
    case "AWS::StackName":
      return pseudo.stackName;
    case "AWS::Partition":
      return "aws";
    case "AWS::URLSuffix":
      return "amazonaws.com";
  }
  const found = physical.get(id);
  if (!found) throw new TemplateError(path, `Ref ${id} names no resource the hosted stack created`);
  return found.ref;
}

/** A Lambda function as the template configures it (intrinsics unresolved in `environment`). */
export interface TemplateFunction {
  readonly logicalId: string;
  readonly packageType: "Zip" | "Image";
  /** Zip: the asset directory under the cloud assembly (`Metadata["aws:asset:path"]`). */
  readonly assetPath?: string;
  /** Image: the Dockerfile, relative to the build context (`Metadata["aws:asset:dockerfile-path"]`). */
  readonly dockerfilePath?: string;
  /** Logical ids of its layers (`Layers`, each a `Ref` to a layer version of the template), in order. */
  readonly layers: readonly string[];
  readonly handler: string;
  readonly environment: Readonly<Record<string, unknown>>;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  readonly reservedConcurrency?: number;
}

export interface TemplateMapping {
  readonly logicalId: string;
  readonly functionRef: string;
  readonly eventSourceArn: unknown;
  readonly batchSize: number;
  readonly maxBatchingWindowSeconds: number;
  readonly reportBatchItemFailures: boolean;
  readonly maxConcurrency?: number;
}

const num = (v: unknown, fallback: number): number => (v === undefined ? fallback : Number(v));

/** The template's functions, except custom-resource providers (their effect is applied by the hosted stack itself). */
export function templateFunctions(template: CfnTemplate): TemplateFunction[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === "AWS::Lambda::Function" && !String(r.Properties?.Description ?? "").includes("CloudFormation handler"))
    .map(([logicalId, r]) => {
      const p = r.Properties ?? {};
      const image = p.PackageType === "Image";
      return {
        logicalId,
        packageType: image ? "Image" : "Zip",
        ...(r.Metadata?.["aws:asset:path"] && !image ? { assetPath: String(r.Metadata["aws:asset:path"]) } : {}),
        ...(r.Metadata?.["aws:asset:dockerfile-path"] && image ? { dockerfilePath: String(r.Metadata["aws:asset:dockerfile-path"]) } : {}),
        layers: ((p.Layers ?? []) as unknown[]).map((layer, i) => {
          const ref = (layer as { Ref?: unknown } | null)?.Ref;
          if (typeof ref !== "string" || template.Resources[ref]?.Type !== "AWS::Lambda::LayerVersion") {
            throw new TemplateError(`${logicalId}.Layers[${i}]`, "a Ref to a layer version of this template is expected (a layer from elsewhere has no files here)");
          }
          return ref;
        }),
        handler: String(p.Handler ?? "index.handler"),
        environment: ((p.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}) as Record<string, unknown>,
        timeoutSeconds: num(p.Timeout, 3),
        memoryMb: num(p.MemorySize, 128),
        ...(p.ReservedConcurrentExecutions !== undefined ? { reservedConcurrency: Number(p.ReservedConcurrentExecutions) } : {}),
      };
    });
}

/** Each layer version's asset directory under the cloud assembly (`Metadata["aws:asset:path"]`), by logical id. */
export function templateLayers(template: CfnTemplate): ReadonlyMap<string, string> {
  return new Map(
    resourcesOfType(template, "AWS::Lambda::LayerVersion").map(([logicalId, r]) => {
      const path = r.Metadata?.["aws:asset:path"];
      if (!path) throw new TemplateError(`${logicalId}.Content`, "a layer without an asset path (aws:asset:path metadata)");
      return [logicalId, String(path)];
    }),
  );
}

export function templateMappings(template: CfnTemplate): TemplateMapping[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === "AWS::Lambda::EventSourceMapping")
    .map(([logicalId, r]) => {
      const p = r.Properties ?? {};
      const fn = p.FunctionName as { Ref?: string } | undefined;
      if (!fn?.Ref) throw new TemplateError(`${logicalId}.FunctionName`, "a Ref to a function of this template is expected");
      const scaling = p.ScalingConfig as { MaximumConcurrency?: number } | undefined;
      return {
        logicalId,
        functionRef: fn.Ref,
        eventSourceArn: p.EventSourceArn,
        batchSize: num(p.BatchSize, 10),
        maxBatchingWindowSeconds: num(p.MaximumBatchingWindowInSeconds, 0),
        reportBatchItemFailures: ((p.FunctionResponseTypes as string[] | undefined) ?? []).includes("ReportBatchItemFailures"),
        ...(scaling?.MaximumConcurrency ? { maxConcurrency: scaling.MaximumConcurrency } : {}),
      };
    });
}

export function resourcesOfType(template: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}
