import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SchemaError } from "../../../src/codec/errors.ts";
import { parseCsvRows, parseJsonLines } from "../../../src/codec/table-rows.ts";
import { schemaOf } from "../../../src/api/table.ts";

const columns = schemaOf({ id: "INT64", blob: "BYTES" });

describe("BYTES cells", () => {
  it("decode standard padded base64 alike from CSV and JSON Lines", () => {
    const [csv] = parseCsvRows("id,blob\n1,aGk=\n", columns);
    const [json] = parseJsonLines('{"id": 1, "blob": "aGk="}\n', columns);
    assert.deepEqual(Buffer.from(csv!.blob as Uint8Array).toString(), "hi");
    assert.deepEqual(csv!.blob, json!.blob);
  });

  it("refuse what is not base64 in CSV as in JSON Lines, naming the column and the value", () => {
    for (const bad of ["aGk", "a*Gk=", "aGk=x"]) {
      assert.throws(() => parseCsvRows(`id,blob\n1,${bad}\n`, columns), (e: unknown) => e instanceof SchemaError && e.message.includes("blob") && e.message.includes(bad), `CSV ${bad}`);
      assert.throws(() => parseJsonLines(`{"id": 1, "blob": "${bad}"}\n`, columns), (e: unknown) => e instanceof SchemaError && e.message.includes("blob"), `JSON ${bad}`);
    }
  });
});

describe("list cells in JSON Lines", () => {
  const lists = schemaOf({ ids: "INT64[]", xs: "FLOAT32[3]" });

  it("keep numbers and convert the strings JSON needs, wherever they stand in the list", () => {
    const [row] = parseJsonLines('{"ids": [1, "9007199254740993"], "xs": [0.5, "NaN", "-Infinity"]}\n', lists);
    assert.deepEqual(row!.ids, [1, 9007199254740993n]);
    assert.equal((row!.xs as number[])[0], 0.5);
    assert.ok(Number.isNaN((row!.xs as number[])[1]));
    assert.equal((row!.xs as number[])[2], -Infinity);
  });

  it("refuse a list inside a list after numbers, naming the column and the row", () => {
    assert.throws(
      () => parseJsonLines('{"ids": [1], "xs": [1]}\n{"ids": [1, 2, [3]], "xs": [1]}\n', lists),
      (e: unknown) => e instanceof SchemaError && e.message.includes("ids") && e.message.includes("1"),
    );
  });
});
