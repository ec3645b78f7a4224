/**
 * A shard read as a stream from its cursor: the same rows as reading the whole object, for JSON
 * Lines, CSV and TFRecord, from the start and from a cursor in the middle, in chunks.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { shardRowChunks } from "../../../functions/shard-feed/shard-rows.ts";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { SchemaError } from "../../../src/codec/errors.ts";
import { createDecoder, createEncoder } from "../../../src/codec/example.ts";
import type { Column, Row } from "../../../src/codec/schema.ts";
import { parseCsvRows, parseJsonLines, type TableFormat } from "../../../src/codec/table-rows.ts";
import { frameRecords, unframeRecords } from "../../../src/codec/tfrecord.ts";
import { rowToJson } from "../../../src/protocol/table-source.ts";
import { Registry } from "../../../src/registry/registry.ts";
import { putObject } from "../../../src/storage/objects.ts";

const clients = createAwsClients();
const deps = { clients, registry: new Registry(clients, "unused") };
const bucket = `stf-rows-${randomUUID().slice(0, 8)}`;
const COLUMNS: Column[] = [
  { name: "v", dtype: "FLOAT32", shape: { fixed: 3 } },
  { name: "label", dtype: "INT64", shape: "scalar" },
];
const N = 10_000;
const rows: Row[] = Array.from({ length: N }, (_, i) => ({ v: [i, i / 2, -i], label: BigInt(i % 7) }));

const bodies: Record<TableFormat, Uint8Array | string> = {
  // A blank line in the middle is not a row.
  jsonl: rows.slice(0, 5_000).map(rowToJson).join("\n") + "\n\n" + rows.slice(5_000).map(rowToJson).join("\n") + "\n",
  csv: "v,label\n" + rows.map((r) => `"${(r.v as number[]).join(" ")}",${r.label}`).join("\n") + "\n",
  tfrecord: frameRecords(rows.map((r, i) => createEncoder(COLUMNS).encode(r, i))),
};

/** The whole object read at once, as the rows a reader must give. */
function whole(format: TableFormat): Row[] {
  const body = bodies[format];
  if (format === "jsonl") return parseJsonLines(body as string, COLUMNS);
  if (format === "csv") return parseCsvRows(body as string, COLUMNS);
  const decoder = createDecoder(COLUMNS);
  return unframeRecords(body as Uint8Array).map((r, i) => decoder.decode(r, i));
}

async function read(format: TableFormat, fromRow: number, chunkRows: number): Promise<{ firsts: number[]; rows: Row[] }> {
  const shard = { shardId: "s00000", index: 0, uri: `s3://${bucket}/rows.${format}`, format };
  const out = { firsts: [] as number[], rows: [] as Row[] };
  for await (const chunk of shardRowChunks(deps, shard, COLUMNS, fromRow, chunkRows)) {
    out.firsts.push(chunk.first);
    out.rows.push(...chunk.rows);
  }
  return out;
}

before(async () => {
  await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  for (const format of ["jsonl", "csv", "tfrecord"] as const) await putObject(clients, { bucket, key: `rows.${format}` }, bodies[format]);
});

after(() => destroyAwsClients(clients));

describe("a shard read as a stream", () => {
  for (const format of ["jsonl", "csv", "tfrecord"] as const) {
    it(`gives every ${format} row once, in chunks, from the start and from a cursor`, async () => {
      // Arrange
      const expected = whole(format);

      // Act
      const all = await read(format, 0, 1_000);
      const resumed = await read(format, 4_321, 1_000);

      // Assert
      assert.equal(expected.length, N);
      assert.deepEqual(all.rows, expected);
      assert.deepEqual(all.firsts, Array.from({ length: 10 }, (_, i) => i * 1_000));
      assert.deepEqual(resumed.rows, expected.slice(4_321));
      assert.deepEqual(resumed.firsts.slice(0, 2), [4_321, 5_321]);
    });
  }

  it("names a line that is not JSON by its row in the whole shard", async () => {
    // Arrange
    const bad = rows.slice(0, 2_500).map(rowToJson).join("\n") + '\n{"v":[1,2,3],"label":\n';
    await putObject(clients, { bucket, key: "bad.jsonl" }, bad);
    const shard = { shardId: "s00001", index: 1, uri: `s3://${bucket}/bad.jsonl`, format: "jsonl" as const };

    // Act
    const consume = async () => {
      for await (const _chunk of shardRowChunks(deps, shard, COLUMNS, 0, 1_000));
    };

    // Assert
    await assert.rejects(consume, (e: unknown) => e instanceof SchemaError && e.column === "<row>" && e.rowIndex === 2_500);
  });
});
