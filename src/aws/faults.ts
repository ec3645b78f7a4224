/**
 * Fault injection at the AWS client: one switch that makes a chosen fraction of calls fail the
 * way AWS really fails (throttling, a 5xx, a timeout before the request, and a response lost
 * after the request succeeded). It sits inside the SDK's retry loop, so what it proves is that
 * retries, idempotent writes and consumer-side dedupe turn faults into no visible difference.
 *
 * Switched on by `SERVERLESS_TF_FAULT_RATE` (0..0.5) and, for a repeatable run,
 * `SERVERLESS_TF_FAULT_SEED`. The Python workers read the same variables
 * (python/serverless_tf/aws/faults.py).
 */
import type { DeserializeMiddleware, MetadataBearer, Pluggable } from "@smithy/types";
import { ConfigError } from "../errors.ts";

export const FAULT_KINDS = ["throttling", "server-error", "timeout", "lost-response"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultSettings {
  readonly rate: number;
  readonly seed: number;
}

/** Counts of injected faults, shared by every client built with the same settings object. */
export const injectedFaults: Record<FaultKind, number> = { throttling: 0, "server-error": 0, timeout: 0, "lost-response": 0 };

export function faultSettingsFromEnv(env: Readonly<Record<string, string | undefined>>): FaultSettings | undefined {
  const raw = env.SERVERLESS_TF_FAULT_RATE;
  if (raw === undefined || raw === "" || raw === "0") return undefined;
  const rate = Number(raw);
  if (!(rate > 0 && rate <= 0.5)) throw new ConfigError("SERVERLESS_TF_FAULT_RATE", raw, "a fraction of calls from 0 to 0.5, e.g. 0.05");
  const seed = Number(env.SERVERLESS_TF_FAULT_SEED ?? 1);
  if (!Number.isSafeInteger(seed)) throw new ConfigError("SERVERLESS_TF_FAULT_SEED", env.SERVERLESS_TF_FAULT_SEED, "an integer");
  return { rate, seed };
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
  const middleware: DeserializeMiddleware<object, MetadataBearer> = (next) => async (args) => {
    if (next01() >= settings.rate) return next(args);
    const kind = FAULT_KINDS[Math.floor(next01() * FAULT_KINDS.length)]!;
    injectedFaults[kind] += 1;
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
