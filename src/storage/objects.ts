/** Reading and writing the objects a job keeps in S3: JSON documents, bytes, listings. */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, NoSuchKey, NotFound, PutObjectCommand, S3ServiceException } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import type { AwsClients } from "../aws/clients.ts";
import type { S3Location } from "../protocol/names.ts";

export interface StoredObject {
  readonly body: Uint8Array;
  readonly etag: string;
}

function isMissing(e: unknown): boolean {
  return e instanceof NoSuchKey || e instanceof NotFound || (e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404);
}

/** True when S3 refused a conditional write (`If-Match` / `If-None-Match`). */
export function isPreconditionFailed(e: unknown): boolean {
  return e instanceof S3ServiceException && (e.$metadata.httpStatusCode === 412 || e.name === "PreconditionFailed" || e.$metadata.httpStatusCode === 409);
}

export async function getObject(clients: AwsClients, at: S3Location): Promise<StoredObject | undefined> {
  try {
    const out = await clients.s3.send(new GetObjectCommand({ Bucket: at.bucket, Key: at.key }));
    return { body: await out.Body!.transformToByteArray(), etag: out.ETag ?? "" };
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/**
 * An object's body as a stream, so a reader holds a part of it at a time, never the whole.
 *
 * @example
 * for await (const bytes of (await getObjectStream(clients, at))!) process(bytes);
 */
export async function getObjectStream(clients: AwsClients, at: S3Location): Promise<Readable | undefined> {
  try {
    const out = await clients.s3.send(new GetObjectCommand({ Bucket: at.bucket, Key: at.key }));
    return out.Body as Readable;
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

export async function headObject(clients: AwsClients, at: S3Location): Promise<{ size: number; etag: string } | undefined> {
  try {
    const out = await clients.s3.send(new HeadObjectCommand({ Bucket: at.bucket, Key: at.key }));
    return { size: out.ContentLength ?? 0, etag: out.ETag ?? "" };
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

export async function getJson<T>(clients: AwsClients, at: S3Location): Promise<{ value: T; etag: string } | undefined> {
  const object = await getObject(clients, at);
  return object && { value: JSON.parse(Buffer.from(object.body).toString("utf8")) as T, etag: object.etag };
}

/**
 * Puts an object. `ifNoneMatch: "*"` creates it only if absent; `ifMatch` replaces it only if
 * unchanged since it was read. Both throw a precondition failure otherwise (see {@link isPreconditionFailed}).
 */
export async function putObject(
  clients: AwsClients,
  at: S3Location,
  body: Uint8Array | string,
  options: { contentType?: string; ifNoneMatch?: "*"; ifMatch?: string } = {},
): Promise<string> {
  const out = await clients.s3.send(
    new PutObjectCommand({
      Bucket: at.bucket,
      Key: at.key,
      Body: body,
      ContentType: options.contentType,
      IfNoneMatch: options.ifNoneMatch,
      IfMatch: options.ifMatch,
    }),
  );
  return out.ETag ?? "";
}

export function putJson(clients: AwsClients, at: S3Location, value: unknown, options: { ifNoneMatch?: "*"; ifMatch?: string } = {}): Promise<string> {
  return putObject(clients, at, JSON.stringify(value, null, 2), { ...options, contentType: "application/json" });
}

export async function listKeys(clients: AwsClients, at: S3Location): Promise<{ key: string; size: number }[]> {
  const keys: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const page = await clients.s3.send(new ListObjectsV2Command({ Bucket: at.bucket, Prefix: at.key, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push({ key: o.Key, size: o.Size ?? 0 });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
