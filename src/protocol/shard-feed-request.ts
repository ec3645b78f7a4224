/** A shard-feed request: one shard of a bounded table to feed (sent by the coordinator, and by a shard-feed to its own continuation). */
import { TABLE_FORMATS, type TableFormat } from "../codec/table-rows.ts";
import { JOB_ID_PATTERN } from "./names.ts";
import { EventShapeError } from "./errors.ts";
import { parseEventJson } from "./json.ts";

export interface ShardRef {
  readonly shardId: string;
  /** Position of the shard in the plan: spreads rows over members and makes row ids unique. */
  readonly index: number;
  readonly uri: string;
  readonly format: TableFormat;
}

/** The body of a message on the shard-feed queue. */
export interface ShardFeedEvent {
  readonly jobId: string;
  readonly shard: ShardRef;
}

const TYPE = "shard-feed event";

function field<T>(value: unknown, name: string, expected: string, ok: (v: unknown) => boolean): T {
  if (!ok(value)) throw new EventShapeError(TYPE, name, value, expected);
  return value as T;
}

export function parseShardFeedEvent(body: string): ShardFeedEvent {
  const json = parseEventJson(TYPE, body);
  const o = field<Record<string, unknown>>(json, "body", "a JSON object", (v) => typeof v === "object" && v !== null && !Array.isArray(v));
  const shard = field<Record<string, unknown>>(o.shard, "shard", "an object", (v) => typeof v === "object" && v !== null && !Array.isArray(v));
  return {
    jobId: field<string>(o.jobId, "jobId", `a job id matching ${JOB_ID_PATTERN}`, (v) => typeof v === "string" && JOB_ID_PATTERN.test(v)),
    shard: {
      shardId: field<string>(shard.shardId, "shard.shardId", "a short id", (v) => typeof v === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(v)),
      index: field<number>(shard.index, "shard.index", "an integer from 0 to 2^21", (v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 21),
      uri: field<string>(shard.uri, "shard.uri", "an s3:// URI", (v) => typeof v === "string" && v.startsWith("s3://") && v.length < 2048),
      format: field<TableFormat>(shard.format, "shard.format", TABLE_FORMATS.join(" | "), (v) => (TABLE_FORMATS as readonly unknown[]).includes(v)),
    },
  };
}
