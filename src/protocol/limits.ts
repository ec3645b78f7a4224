/**
 * Transport limits the protocol is sized by, in one place.
 */

/**
 * Bytes an SQS message body (plus its attributes) may hold. 256 KiB: the size moto enforces and
 * the default `MaximumMessageSize` of a queue created without that attribute.
 */
export const SQS_MAX_MESSAGE_BYTES = 262_144;
