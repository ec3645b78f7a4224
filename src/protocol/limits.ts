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
