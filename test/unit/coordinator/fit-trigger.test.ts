import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isPlainKey } from "../../../functions/coordinator/fit-trigger.ts";

describe("fit trigger keys", () => {
  it("takes plain keys and refuses . and .. segments, which would find another prefix's _fit.json", () => {
    assert.equal(isPlainKey("training/digits/part-0.jsonl"), true);
    assert.equal(isPlainKey("training/digits..v2/part-0.jsonl"), true, "dots inside a name are a name");
    assert.equal(isPlainKey("training/a/../../models/x/data.jsonl"), false);
    assert.equal(isPlainKey("training/./data.jsonl"), false);
  });
});
