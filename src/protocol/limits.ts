/**
 * Transport limits the protocol is sized by, in one place.
 */

/**
 * Bytes an SQS message (body plus attributes) may hold: 1 MiB since 2025-08. A queue takes it
 * only with `MaximumMessageSize` set (the attribute's default is still 256 KiB), so every queue
 * this package creates sets it (src/jobs/queues.ts `createQueue`, the stack's queues).
 */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;

/**
 * The most TFRecord bytes one deflated feed message may inflate to: the packer's cap on a message
 * of data that compresses well, and the workers' guard against a message that would inflate
 * past it (python/serverless_tf/input/feed.py).
 */
export const MAX_INFLATED_FEED_BYTES = 16 * 1_048_576;

/** Entries in one SendMessageBatch. */
export const SQS_MAX_BATCH_ENTRIES = 10;

/** SQS's limit on one SendMessageBatch's entries together (the same 1 MiB), less room for the request's own fields. */
export const SQS_MAX_BATCH_BYTES = SQS_MAX_MESSAGE_BYTES - 8_192;

/**
 * Splits `items` into SendMessageBatch requests, in order: at most 10 entries each, and entries
 * whose `bytesOf` (body plus attributes) add up to at most {@link SQS_MAX_BATCH_BYTES}, so ten
 * messages near the 1 MiB limit go as ten requests, not one that SQS refuses whole. An item
 * bigger than the budget goes alone (SQS judges it).
 *
 * @example
 * sendBatches(bodies, (b) => Buffer.byteLength(b)); // [[b0, ..., b9], [b10], ...]
 */
export function sendBatches<T>(items: readonly T[], bytesOf: (item: T) => number): T[][] {
  const batches: T[][] = [];
  let size = 0;
  for (const item of items) {
    const bytes = bytesOf(item);
    const last = batches.at(-1);
    if (!last || last.length === SQS_MAX_BATCH_ENTRIES || size + bytes > SQS_MAX_BATCH_BYTES) {
      batches.push([item]);
      size = bytes;
    } else {
      last.push(item);
      size += bytes;
    }
  }
  return batches;
}
