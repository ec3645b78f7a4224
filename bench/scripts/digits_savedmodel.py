"""The inference bench's real model and its in-process baseline.

``python digits_savedmodel.py OUT_DIR BATCH ONNX_FILE`` trains the demo's digits classifier
(demo/digits_model.py ``build_model``) for a few epochs on scikit-learn's digits, saves it as a
SavedModel in OUT_DIR and its serving signature (demo/digits_model.py ``serve``) as ONNX in
ONNX_FILE, as a signature-mode export does, and prints JSON: rows/s of the demo's own ``predict`` computation (the
model, softmax, argmax, max) at BATCH rows per call in this process (best of 3 passes over
20 calls), and the median latency of a 1-row call in milliseconds.
"""
import json
import statistics
import sys
import time
from pathlib import Path

import serverless_tf  # noqa: F401  (tf.keras is tf-keras, as in the workers)
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "demo"))
from digits_model import build_model, serve  # noqa: E402
from serverless_tf.protocol.schema import Column, Fixed  # noqa: E402
from serverless_tf.worker.export import SignatureExport, write_serving_onnx  # noqa: E402

out, batch, onnx_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
digits = load_digits()
x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
model = build_model({"hidden": 64})
model.compile(optimizer=tf.keras.optimizers.Adam(0.005), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(x, y, epochs=10, batch_size=32, verbose=0)
model.save(out)
signature = SignatureExport(
    inputs=(Column("pixels", "FLOAT32", Fixed(64)),),
    outputs=(Column("digit", "INT64", "scalar"), Column("score", "FLOAT32", "scalar")),
    serving=serve,
)
write_serving_onnx(Path(out), signature, Path(onnx_file))


def predict(rows):
    return {name: t.numpy() for name, t in serve(model, {"pixels": rows}).items()}


rows = tf.constant(np.resize(x, (batch, 64)))
one = tf.constant(x[:1])
for _ in range(5):
    predict(rows)
best = None
for _ in range(3):
    started = time.perf_counter()
    for _ in range(20):
        predict(rows)
    seconds = time.perf_counter() - started
    best = seconds if best is None else min(best, seconds)
single = []
for _ in range(200):
    t = time.perf_counter()
    predict(one)
    single.append((time.perf_counter() - t) * 1000)
print(json.dumps({"rowsPerSec": 20 * batch / best, "oneRowMs": statistics.median(single)}))
