/**
 * How many steps every member runs on a bounded input, per remainder policy.
 * Every member must run the same number of steps: a collective all-reduce waits forever
 * for a member that has no batch left (MultiWorkerMirroredStrategy hangs on uneven batches).
 */
import { ServerlessTfError } from "../errors.ts";
import type { RemainderPolicy } from "./spec.ts";

export class RemainderError extends ServerlessTfError {}

export interface StepPlan {
  /** Steps each member runs. */
  readonly steps: number;
  /** Real rows that reach training, over all members. */
  readonly rowsSeen: number;
}

export function planSteps(rowsPerMember: readonly number[], batchSize: number, remainder: RemainderPolicy): StepPlan {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RemainderError(`batch size must be a positive integer. Received: ${batchSize}`);
  if (rowsPerMember.length === 0) return { steps: 0, rowsSeen: 0 };
  const total = rowsPerMember.reduce((a, b) => a + b, 0);
  switch (remainder.policy) {
    case "drop": {
      const steps = Math.min(...rowsPerMember.map((n) => Math.floor(n / batchSize)));
      return { steps, rowsSeen: steps * batchSize * rowsPerMember.length };
    }
    case "pad":
      return { steps: Math.max(...rowsPerMember.map((n) => Math.ceil(n / batchSize))), rowsSeen: total };
    case "flush": {
      const steps = Math.max(...rowsPerMember.map((n) => Math.ceil(n / batchSize)));
      const short = rowsPerMember.findIndex((n) => n < steps);
      if (short >= 0) {
        throw new RemainderError(
          `remainder "flush" needs at least ${steps} rows on every worker so each runs ${steps} steps, but worker-${short} has ${rowsPerMember[short]}. ` +
            `Use remainder "pad" (masked padding) or "drop", or feed more rows.`,
        );
      }
      return { steps, rowsSeen: total };
    }
  }
}
