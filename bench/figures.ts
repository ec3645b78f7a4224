/**
 * The bench's registry: every figure `npm run bench` prints. A figure measures something and a
 * baseline for it in the same run, so the printed ratio means something on any machine.
 *
 * To add a figure, write `run` in its own module under bench/ and append an entry below.
 */
import type { BenchContext, Measurement } from "./measurement.ts";
import { benchCoding } from "./coding.ts";
import { benchFeed } from "./feed.ts";
import { benchFit } from "./fit.ts";
import { benchInference } from "./inference.ts";
import { benchShardMemory } from "./shard-memory.ts";

export interface Figure {
  readonly name: string;
  run(ctx: BenchContext): Promise<readonly Measurement[]>;
}

export const figures: Figure[] = [
  { name: "feed", run: (ctx) => benchFeed(ctx) },
  { name: "inference", run: (ctx) => benchInference(ctx) },
  { name: "fit", run: (ctx) => benchFit(ctx) },
  { name: "shard-memory", run: (ctx) => benchShardMemory(ctx) },
  {
    name: "coding",
    run: async () => {
      const c = benchCoding();
      const unit = "examples/s";
      return [
        { name: "tf.Example encode, TS", value: c.tsEncodePerSec, unit, baseline: { name: "TensorFlow SerializeToString of built Examples (median of 5)", value: c.tfEncodePerSec } },
        { name: "tf.Example decode, TS", value: c.tsDecodePerSec, unit, baseline: { name: "one batched tf.io.parse_example (median of 5)", value: c.tfParsePerSec } },
      ];
    },
  },
];
