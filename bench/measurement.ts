/** What a bench figure reports: a value and the baseline it is compared with, measured in the same run, and the goal it is held to. */
import type { LocalRuntime } from "../src/runtime/local-runtime.ts";

export interface Goal {
  /** As the issue or the README states it, e.g. ">= 0.5x (stretch 0.8x)". */
  readonly text: string;
  /** Whether the measurement meets it. */
  met(m: Measurement): boolean;
}

export interface Measurement {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** What `value` is compared with, measured in the same run, in the same unit. */
  readonly baseline: { readonly name: string; readonly value: number };
  /** Higher is better (throughput) unless false (latency, size). */
  readonly higherIsBetter?: boolean;
  readonly goal?: Goal;
}

export const ratioOf = (m: Measurement): number => m.value / m.baseline.value;

/** A ratio of at least `min` (throughput) or at most `max` (time, memory). */
export const ratioGoal = (bound: { readonly min?: number; readonly max?: number; readonly stretch?: number }): Goal => ({
  text: `${bound.min !== undefined ? `>= ${bound.min}x` : `<= ${bound.max}x`}${bound.stretch !== undefined ? ` (stretch ${bound.stretch}x)` : ""}`,
  met: (m) => (bound.min !== undefined ? ratioOf(m) >= bound.min : ratioOf(m) <= bound.max!),
});

/** A value of at most `max` in the measurement's unit (a latency). */
export const valueGoal = (max: number, unit: string): Goal => ({ text: `<= ${max} ${unit}`, met: (m) => m.value <= max });

export interface BenchContext {
  /** The local runtime (emulator started when AWS_ENDPOINT_URL is unset), started on first use. */
  runtime(): Promise<LocalRuntime>;
  log(line: string): void;
}
