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
