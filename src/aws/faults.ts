/**
 * Fault injection at the AWS client: one switch that makes a chosen fraction of calls fail the
 * way AWS really fails (throttling, a 5xx, a timeout before the request, and a response lost
 * after the request succeeded). It sits inside the SDK's retry loop, so what it proves is that
 * retries, idempotent writes and consumer-side dedupe turn faults into no visible difference.
 *
 * Switched on by `SERVERLESS_TF_FAULT_RATE` (0..0.5) and, for a repeatable run,
 * `SERVERLESS_TF_FAULT_SEED`. The Python workers read the same variables
 * (python/serverless_tf/aws/faults.py). `SERVERLESS_TF_FAULT_SLOW_MS` adds a fifth kind on the
 * TypeScript clients only: a call that succeeds after that long (a stalled connection, a paused
 * handler), which is how the inference soak holds a claim past its old lock.
 */
import type { DeserializeMiddleware, MetadataBearer, Pluggable } from "@smithy/types";
import { ConfigError } from "../errors.ts";

export const FAULT_KINDS = ["throttling", "server-error", "timeout", "lost-response", "slow"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultSettings {
  readonly rate: number;
  readonly seed: number;
  /** When set, "slow" is drawn too: the call goes through after this many milliseconds. */
  readonly slowMs?: number;
}

/** Counts of injected faults, shared by every client built with the same settings object. */
export const injectedFaults: Record<FaultKind, number> = { throttling: 0, "server-error": 0, timeout: 0, "lost-response": 0, slow: 0 };
/** The same counts by command, `<CommandName>:<kind>` (`SendMessageBatchCommand:lost-response`). */
export const injectedFaultsByCommand: Record<string, number> = {};

export function faultSettingsFromEnv(env: Readonly<Record<string, string | undefined>>): FaultSettings | undefined {
  const raw = env.SERVERLESS_TF_FAULT_RATE;
  if (raw === undefined || raw === "" || raw === "0") return undefined;
  const rate = Number(raw);
  if (!(rate > 0 && rate <= 0.5)) throw new ConfigError("SERVERLESS_TF_FAULT_RATE", raw, "a fraction of calls from 0 to 0.5, e.g. 0.05");
  const seed = Number(env.SERVERLESS_TF_FAULT_SEED ?? 1);
  if (!Number.isSafeInteger(seed)) throw new ConfigError("SERVERLESS_TF_FAULT_SEED", env.SERVERLESS_TF_FAULT_SEED, "an integer");
  const slow = env.SERVERLESS_TF_FAULT_SLOW_MS;
  if (slow === undefined || slow === "" || slow === "0") return { rate, seed };
  const slowMs = Number(slow);
  if (!Number.isSafeInteger(slowMs) || slowMs < 0) throw new ConfigError("SERVERLESS_TF_FAULT_SLOW_MS", slow, "a delay in milliseconds, e.g. 31000");
  return { rate, seed, slowMs };
}

/** mulberry32: small, fast and seedable, so a failing run can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function awsError(name: string, message: string, status: number | undefined, fault: "client" | "server"): Error {
  // The shape the SDK's retry classification reads: name, $fault and $metadata.httpStatusCode.
  return Object.assign(new Error(`${message} (injected by SERVERLESS_TF_FAULT_RATE)`), { name, $fault: fault, $metadata: status ? { httpStatusCode: status } : {} });
}

export function faultInjection(settings: FaultSettings): Pluggable<object, MetadataBearer> {
  const next01 = random(settings.seed);
  // Without a slow delay the kinds drawn are the first four, as before it existed (seeded runs repeat).
  const kinds = settings.slowMs ? FAULT_KINDS : FAULT_KINDS.filter((k) => k !== "slow");
  const middleware: DeserializeMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
    if (next01() >= settings.rate) return next(args);
    const kind = kinds[Math.floor(next01() * kinds.length)]!;
    injectedFaults[kind] += 1;
    const byCommand = `${(context as { commandName?: string }).commandName ?? "?"}:${kind}`;
    injectedFaultsByCommand[byCommand] = (injectedFaultsByCommand[byCommand] ?? 0) + 1;
    switch (kind) {
      case "throttling":
        throw awsError("ThrottlingException", "Rate exceeded", 400, "client");
      case "server-error":
        throw awsError("InternalError", "We encountered an internal error. Please try again.", 500, "server");
      case "timeout":
        throw awsError("TimeoutError", "Connection timed out before the request was sent", undefined, "client");
      case "lost-response": {
        await next(args); // the request reached AWS and took effect; its answer never arrives
        throw awsError("TimeoutError", "Socket timed out waiting for the response", undefined, "client");
      }
      case "slow":
        await new Promise((resolve) => setTimeout(resolve, settings.slowMs));
        return next(args);
    }
  };
  return {
    applyToStack: (stack) => {
      // The deserialize step runs inside the retry middleware (finalizeRequest): every injected
      // fault goes through the same retry decision a real one would.
      stack.add(middleware, { step: "deserialize", name: "serverlessTfFaultInjection", priority: "low" });
    },
  };
}
