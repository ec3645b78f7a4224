/**
 * Which engine runs a version: the one its metadata's serving mode names (`serving.mode`,
 * written by the checkpoint stage from the export manifest). A model moves between modes with
 * its versions, so each engine starts on the first version that needs it and a batch runs on
 * the engine that loaded its version.
 */
import type { ModelMetadata } from "../../src/protocol/model-metadata.ts";
import type { ServingMode } from "../../src/protocol/spec.ts";
import type { Row } from "../../src/codec/schema.ts";
import type { EngineBatch, InferenceEngine } from "./engine.ts";
import { EngineError } from "./engine-error.ts";

export const servingModeOf = (metadata: ModelMetadata): ServingMode => metadata.serving?.mode ?? "script";

export class ServingEngines implements InferenceEngine {
  private readonly started = new Map<ServingMode, InferenceEngine>();
  private readonly byVersion = new Map<string, InferenceEngine>();

  constructor(private readonly create: Readonly<Record<ServingMode, () => InferenceEngine>>) {}

  /** The engine of `mode`, if one has started. */
  engine(mode: ServingMode): InferenceEngine | undefined {
    return this.started.get(mode);
  }

  async ensure(metadata: ModelMetadata): Promise<void> {
    const mode = servingModeOf(metadata);
    let engine = this.started.get(mode);
    if (!engine) {
      engine = this.create[mode]();
      this.started.set(mode, engine);
    }
    await engine.ensure(metadata);
    this.byVersion.set(metadata.version, engine);
    // Versions come in order: only the last few can still have a batch in flight.
    for (const old of [...this.byVersion.keys()].slice(0, -4)) this.byVersion.delete(old);
  }

  predict(version: string, batch: EngineBatch): Promise<Row[]> {
    const engine = this.byVersion.get(version);
    if (!engine) return Promise.reject(new EngineError(`no engine has loaded version ${version}; the batch is retried`));
    return engine.predict(version, batch);
  }

  async close(): Promise<void> {
    await Promise.all([...this.started.values()].map((e) => e.close()));
    this.started.clear();
    this.byVersion.clear();
  }
}
