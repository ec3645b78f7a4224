/** Object-created notifications, as S3 delivers them through SQS (keys are URL-encoded, spaces as '+'). */
import type { S3Location } from "./names.ts";
import { EventShapeError } from "./errors.ts";
import { parseEventJson } from "./json.ts";

const TYPE = "S3 notification";

/** The objects a notification body announces; an `s3:TestEvent` announces none. */
export function parseS3Notification(body: string): S3Location[] {
  const json = parseEventJson(TYPE, body);
  if (typeof json !== "object" || json === null) throw new EventShapeError(TYPE, "body", json, "a JSON object");
  const o = json as { Event?: unknown; Records?: unknown };
  if (o.Event === "s3:TestEvent") return [];
  if (!Array.isArray(o.Records)) throw new EventShapeError(TYPE, "Records", o.Records, "an array of S3 event records");
  return o.Records.map((r: unknown, i) => {
    const s3 = (r as { s3?: { bucket?: { name?: unknown }; object?: { key?: unknown } } } | null)?.s3;
    const bucket = s3?.bucket?.name;
    const key = s3?.object?.key;
    if (typeof bucket !== "string" || !bucket) throw new EventShapeError(TYPE, `Records[${i}].s3.bucket.name`, bucket, "a bucket name");
    if (typeof key !== "string" || !key) throw new EventShapeError(TYPE, `Records[${i}].s3.object.key`, key, "an object key");
    let decoded: string;
    try {
      decoded = decodeURIComponent(key.replace(/\+/g, " "));
    } catch {
      throw new EventShapeError(TYPE, `Records[${i}].s3.object.key`, key, "a URL-encoded key");
    }
    return { bucket, key: decoded };
  });
}
