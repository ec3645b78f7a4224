/**
 * Prints, as JSON, what the TypeScript coding makes of every shared vector: `{examples: {name: hex},
 * tfrecord: hex}`. The Python suite runs it (`node --import tsx test/vectors/encode-vectors.ts`) and
 * parses the bytes with TensorFlow's own parser and TFRecordDataset.
 */
import { createEncoder } from "../../src/codec/example.ts";
import { frameRecords } from "../../src/codec/tfrecord.ts";
import { loadVectors } from "./vectors.ts";

const examples: Record<string, string> = {};
const records: Uint8Array[] = [];
for (const v of loadVectors()) {
  const bytes = createEncoder(v.columns).encode(v.row);
  examples[v.name] = Buffer.from(bytes).toString("hex");
  records.push(bytes);
}
process.stdout.write(JSON.stringify({ examples, tfrecord: Buffer.from(frameRecords(records)).toString("hex") }));
