/**
 * Throughput of the tf.Example coding: TS encode/decode vs TensorFlow's own serialization and
 * `tf.io.parse_example`, on 100k examples of a digits-like schema (64 FLOAT32 pixels + INT64 label).
 * Also measures whether compressing feed bodies would pay (see tfrecord.ts).
 *
 * Run: `node --import tsx bench/coding.ts` from the repository root.
 */
import { spawnSync } from "node:child_process";
import { deflateRawSync, gzipSync } from "node:zlib";
import protobuf from "protobufjs";
import { createDecoder, createEncoder } from "../src/codec/example.ts";
import type { Column, Row } from "../src/codec/schema.ts";
import { frameRecords } from "../src/codec/tfrecord.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";

const COLUMNS: Column[] = [
  { name: "pixels", dtype: "FLOAT32", shape: { fixed: 64 } },
  { name: "label", dtype: "INT64", shape: "scalar" },
];

export interface CodingBench {
  readonly examples: number;
  readonly tsEncodePerSec: number;
  readonly tsDecodePerSec: number;
  readonly reflectionEncodePerSec: number;
  /** `SerializeToString` of built `tf.train.Example`s, construction timed apart ({@link tfConstructPerSec}). */
  readonly tfEncodePerSec: number;
  readonly tfConstructPerSec: number;
  readonly tfParsePerSec: number;
  readonly compression: { readonly rawBase64: number; readonly gzipBase64: number; readonly deflateMs: number }[];
}

export function digitsRows(n: number): Row[] {
  // sklearn-digits-like pixels: integers 0..16 as floats, about half zeros.
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: n }, (_, i) => ({ pixels: Array.from({ length: 64 }, () => (rand() < 0.5 ? 0 : Math.floor(rand() * 17))), label: BigInt(i % 10) }));
}

/** Rows per second of `fn` over `n` rows: warmed up once, then the median of 5 timed runs. */
function perSec(n: number, fn: () => void): number {
  fn();
  const runs = Array.from({ length: 5 }, () => {
    const t0 = process.hrtime.bigint();
    fn();
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  });
  return runs.sort((a, b) => a - b)[2]!;
}

const PY = String.raw`
import sys, time, numpy as np, tensorflow as tf
n = int(sys.argv[1])
data = sys.stdin.buffer.read()
rng = np.random.default_rng(42)
pix = np.where(rng.random((n, 64)) < 0.5, 0, rng.integers(0, 17, (n, 64))).astype(np.float32)
def median_rate(fn):
    fn()  # warm up
    rates = []
    for _ in range(5):
        t0 = time.perf_counter(); fn(); rates.append(n / (time.perf_counter() - t0))
    return sorted(rates)[2]
def build():
    return [tf.train.Example(features=tf.train.Features(feature={"pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pix[i])), "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 10]))})) for i in range(n)]
examples = build()
construct = median_rate(build)
enc = median_rate(lambda: [e.SerializeToString(deterministic=True) for e in examples])

spec = {"pixels": tf.io.FixedLenFeature([64], tf.float32), "label": tf.io.FixedLenFeature([], tf.int64)}
records, p = [], 0
while p < len(data):
    ln = int.from_bytes(data[p:p+8], "little"); records.append(data[p+12:p+12+ln]); p += 16 + ln
batch = tf.constant(records)
dec = median_rate(lambda: tf.io.parse_example(batch, spec)["pixels"].numpy())
print(f"{enc} {dec} {construct}")
`;

function reflectionEncoder(): (row: Row) => Uint8Array {
  const root = protobuf.parse(`syntax = "proto3"; package tensorflow;
    message BytesList { repeated bytes value = 1; } message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }
    message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    message Features { map<string, Feature> feature = 1; } message Example { Features features = 1; }`).root;
  const Example = root.lookupType("tensorflow.Example");
  return (row) => {
    const label = row.label as bigint;
    return Example.encode({ features: { feature: { label: { int64List: { value: [Number(label)] } }, pixels: { floatList: { value: row.pixels } } } } }).finish();
  };
}

/** Measure and print TS vs TensorFlow coding throughput; returns the numbers. */
export function benchCoding(examples = 100_000): CodingBench {
  const rows = digitsRows(examples);
  const encoder = createEncoder(COLUMNS);
  const decoder = createDecoder(COLUMNS);
  let encoded: Uint8Array[] = [];
  const tsEncodePerSec = perSec(examples, () => (encoded = rows.map((r, i) => encoder.encode(r, i))));
  const tsDecodePerSec = perSec(examples, () => encoded.forEach((b, i) => decoder.decode(b, i)));
  const reflect = reflectionEncoder();
  const reflectionEncodePerSec = perSec(examples, () => rows.forEach((r) => reflect(r)));

  const stream = frameRecords(encoded);
  const py = spawnSync(projectPython, ["-c", PY, String(examples)], { input: stream, cwd: projectRoot, maxBuffer: 1 << 20, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "3" } });
  if (py.status !== 0) throw new Error(`TensorFlow benchmark failed: ${py.stderr.toString().slice(-2000)}`);
  const [tfEncodePerSec, tfParsePerSec, tfConstructPerSec] = py.stdout.toString().trim().split(/\s+/).map(Number) as [number, number, number];

  // Compression of one SQS-sized body worth of frames (~190 KiB of frames), digits-like and random pixels.
  const compression = [encoded.slice(0, 600), digitsRows(600).map((r) => encoder.encode({ ...r, pixels: (r.pixels as number[]).map(() => Math.random()) }))].map((records) => {
    const frames = frameRecords(records);
    const t0 = process.hrtime.bigint();
    const gz = gzipSync(frames);
    deflateRawSync(frames);
    return { rawBase64: Buffer.from(frames).toString("base64").length, gzipBase64: gz.toString("base64").length, deflateMs: Number(process.hrtime.bigint() - t0) / 2e6 };
  });

  const result = { examples, tsEncodePerSec, tsDecodePerSec, reflectionEncodePerSec, tfEncodePerSec, tfConstructPerSec, tfParsePerSec, compression };
  const k = (x: number) => `${Math.round(x).toLocaleString("en-US")}/s`;
  console.log(`coding bench: ${examples} examples of 64 FLOAT32 + INT64`);
  console.log(`  encode  TS (protobufjs Writer) ${k(tsEncodePerSec)}  | protobufjs reflection ${k(reflectionEncodePerSec)}  | TF SerializeToString ${k(tfEncodePerSec)} (building the Examples apart: ${k(tfConstructPerSec)})  | TS/TF ${(tsEncodePerSec / tfEncodePerSec).toFixed(2)}x`);
  console.log(`  decode  TS ${k(tsDecodePerSec)}  | one batched tf.io.parse_example ${k(tfParsePerSec)}  | TS/TF ${(tsDecodePerSec / tfParsePerSec).toFixed(2)}x`);
  for (const [i, c] of compression.entries()) {
    console.log(`  body of 600 examples (${i === 0 ? "digits-like pixels" : "random pixels"}): base64 ${c.rawBase64} B, gzip+base64 ${c.gzipBase64} B (${(c.rawBase64 / c.gzipBase64).toFixed(2)}x), ${c.deflateMs.toFixed(2)} ms to compress`);
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) benchCoding();
