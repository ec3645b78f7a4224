import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crc32c, maskedCrc32c } from "../../../src/codec/crc32c.ts";
import { DecodeError, SchemaError } from "../../../src/codec/errors.ts";
import { randomBytes } from "node:crypto";
import { inflateRawSync } from "node:zlib";
import { base64Length, FRAME_OVERHEAD, framedBase64Length, frameRecords, packDeflatedRecords, packRecords, unframeRecords } from "../../../src/codec/tfrecord.ts";

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);

describe("CRC32C", () => {
  it("matches the standard CRC32C check value", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(maskedCrc32c(new Uint8Array(0)), 0xa282ead8); // mask of crc 0
  });

  it("frames records byte for byte as tf.io.TFRecordWriter does", () => {
    // Written by TensorFlow 2.21: TFRecordWriter.write(b"") then write(b"abc").
    const fromTensorFlow = "000000000000000029039807d8ea82a20300000000000000b099490e6162636e57f121";
    assert.equal(Buffer.from(frameRecords([new Uint8Array(0), new TextEncoder().encode("abc")])).toString("hex"), fromTensorFlow);
  });

  it("gives the same answer on unaligned slices as on copies", () => {
    const data = new Uint8Array(100).map((_, i) => (i * 31) & 0xff);
    for (let start = 0; start < 9; start++) assert.equal(crc32c(data, start, 97), crc32c(data.slice(start, 97)));
  });
});

describe("TFRecord framing", () => {
  it("round-trips records, including an empty one", () => {
    const records = [bytes(3), new Uint8Array(0), bytes(300, 1)];
    assert.deepEqual(unframeRecords(frameRecords(records)).map((r) => Array.from(r)), records.map((r) => Array.from(r)));
  });

  it("throws a DecodeError with the offset on a corrupt data byte", () => {
    const stream = frameRecords([bytes(5), bytes(5)]);
    stream[5 + FRAME_OVERHEAD + 12]! ^= 0xff; // first data byte of the second frame
    assert.throws(() => unframeRecords(stream), (e: unknown) => e instanceof DecodeError && e.offset === 5 + FRAME_OVERHEAD + 12 && /data CRC/.test(e.message));
  });

  it("throws a DecodeError on truncation and on a corrupt length", () => {
    const stream = frameRecords([bytes(5)]);
    assert.throws(() => unframeRecords(stream.subarray(0, stream.length - 1)), (e: unknown) => e instanceof DecodeError && /truncated/.test(e.message));
    const badLength = new Uint8Array(stream);
    badLength[0] = 6;
    assert.throws(() => unframeRecords(badLength), (e: unknown) => e instanceof DecodeError && /length CRC/.test(e.message));
  });
});

describe("packing records into SQS messages", () => {
  it("computes the exact base64 size of framed records", () => {
    const records = [bytes(10), bytes(11)];
    assert.equal(framedBase64Length(records), Buffer.from(frameRecords(records)).toString("base64").length);
    assert.equal(base64Length(0), 0);
  });

  it("keeps every message within the budget, in order, without losing a record", () => {
    // Arrange
    const records = Array.from({ length: 500 }, (_, i) => bytes(50 + (i % 37), i & 0xff));
    const envelopeBytes = 180;
    // Act
    const groups = packRecords(records, { maxBodyBytes: 4096, envelopeBytes });
    // Assert
    assert.deepEqual(groups.flat(), records);
    for (const g of groups) {
      const body = envelopeBytes + Buffer.from(frameRecords(g)).toString("base64").length;
      assert.ok(body <= 4096, `body of ${body} bytes`);
    }
    // Greedy: adding the next record to any group would overflow it.
    for (let i = 0; i + 1 < groups.length; i++) assert.ok(envelopeBytes + framedBase64Length([...groups[i]!, groups[i + 1]![0]!]) > 4096);
  });

  it("throws a SchemaError naming the row of a record too big for one message", () => {
    const records = [bytes(10), bytes(10), bytes(5000)];
    assert.throws(
      () => packRecords(records, { maxBodyBytes: 4096, envelopeBytes: 100, firstRowIndex: 40 }),
      (e: unknown) => e instanceof SchemaError && e.rowIndex === 42 && /S3/.test(e.message),
    );
  });

  it("fills a message exactly up to the budget", () => {
    // 3 records of 14 bytes -> 3 frames of 30 bytes = 90 bytes -> 120 base64 chars.
    const groups = packRecords([bytes(14), bytes(14), bytes(14)], { maxBodyBytes: 130, envelopeBytes: 10 });
    assert.equal(groups.length, 1);
    assert.equal(packRecords([bytes(14), bytes(14), bytes(14)], { maxBodyBytes: 129, envelopeBytes: 10 }).length, 2);
  });
});

describe("packDeflatedRecords", () => {
  const inflated = (data: string) => unframeRecords(inflateRawSync(Buffer.from(data, "base64"))).map((r) => new Uint8Array(r));

  it("packs compressible records several times denser than plain frames, in order, each message within the budget", async () => {
    // Arrange: tf.Example-like records, mostly repeated bytes
    const records = Array.from({ length: 3000 }, (_, i) => new Uint8Array(300).fill(i % 17));
    const options = { maxBodyBytes: 65_536, envelopeBytes: 200, maxInflatedBytes: 16 * 1_048_576 };
    // Act
    const groups = await packDeflatedRecords(records, options);
    // Assert
    assert.deepEqual(groups.flatMap((g) => inflated(g.data)), records);
    assert.deepEqual(groups.map((g) => inflated(g.data).length), groups.map((g) => g.count));
    for (const g of groups) assert.ok(options.envelopeBytes + g.data.length <= options.maxBodyBytes, `body of ${g.data.length} base64 bytes`);
    assert.ok(groups.length * 4 <= packRecords(records, options).length, `${groups.length} deflated messages vs ${packRecords(records, options).length} plain`);
  });

  it("splits incompressible records until each message fits, and packs them the same way twice", async () => {
    const records = Array.from({ length: 400 }, () => new Uint8Array(randomBytes(500)));
    const options = { maxBodyBytes: 32_768, envelopeBytes: 100, maxInflatedBytes: 16 * 1_048_576 };
    const first = await packDeflatedRecords(records, options);
    assert.deepEqual(first.flatMap((g) => inflated(g.data)), records);
    for (const g of first) assert.ok(options.envelopeBytes + g.data.length <= options.maxBodyBytes);
    assert.deepEqual(await packDeflatedRecords(records, options), first, "a retry from the same cursor re-sends the same messages");
  });

  it("caps what one message inflates to", async () => {
    const records = Array.from({ length: 1000 }, () => new Uint8Array(1000));
    const groups = await packDeflatedRecords(records, { maxBodyBytes: 1_048_576, envelopeBytes: 100, maxInflatedBytes: 100_000 });
    for (const g of groups) assert.ok(inflateRawSync(Buffer.from(g.data, "base64")).length <= 100_000);
    assert.equal(groups.reduce((n, g) => n + g.count, 0), 1000);
  });

  it("refuses a record too big for one message, naming its row, as packRecords does", async () => {
    await assert.rejects(
      packDeflatedRecords([bytes(10), bytes(5000)], { maxBodyBytes: 4096, envelopeBytes: 100, firstRowIndex: 7, maxInflatedBytes: 1_048_576 }),
      (e: unknown) => e instanceof SchemaError && e.rowIndex === 8,
    );
  });
});
