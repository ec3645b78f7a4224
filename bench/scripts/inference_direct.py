"""Baseline for bench/inference.ts: the same SavedModel called directly in-process.

``python inference_direct.py MODEL_DIR`` prints JSON: rows/s at batches of 10 (the SQS batch
size) and the latency of a 1-row call, in milliseconds (median of 200).
"""
import json
import os
import statistics
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf  # noqa: E402

model = tf.keras.models.load_model(sys.argv[1])
ten = tf.random.uniform((10, 1))
one = tf.random.uniform((1, 1))
for _ in range(20):
    model(ten, training=False)
calls = 500
started = time.perf_counter()
for _ in range(calls):
    model(ten, training=False).numpy()
rows_per_sec = calls * 10 / (time.perf_counter() - started)
single = []
for _ in range(200):
    t = time.perf_counter()
    model(one, training=False).numpy()
    single.append((time.perf_counter() - t) * 1000)
print(json.dumps({"rowsPerSec": rows_per_sec, "oneRowMs": statistics.median(single)}))
