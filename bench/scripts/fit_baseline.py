"""The fit figure's baseline: plain Keras ``model.fit`` in one process on the same rows.

``python fit_baseline.py DIGITS_DIR EPOCHS BATCH`` reads the JSON Lines that
demo/prepare_digits.py wrote (the rows the bench's fit trains on), trains the demo's classifier
(demo/digits_model.py ``build_model``, the same hyper-parameters) and prints JSON: the seconds
from the start of the process's work to the first epoch whose held-out accuracy reached 0.95,
the seconds of the whole fit, and the final held-out accuracy.
"""
import json
import sys
import time
from pathlib import Path

started = time.perf_counter()  # before TensorFlow's import, as the workers' start-up counts too
import serverless_tf  # noqa: E402,F401  (tf.keras is tf-keras, as in the workers)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "demo"))
from digits_model import build_model  # noqa: E402

directory, epochs, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def load(files):
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return np.array([r["pixels"] for r in rows], np.float32), np.array([int(r["label"]) for r in rows], np.int64)


x, y = load(sorted(directory.glob("train-*.jsonl")))
tx, ty = load([directory / "test.jsonl"])
model = build_model({"hidden": 64})
model.compile(optimizer=tf.keras.optimizers.Adam(0.005), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
reached = None


class Held(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        global reached
        if reached is None and self.model.evaluate(tx, ty, verbose=0)[1] >= 0.95:
            reached = time.perf_counter() - started


model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=[Held()])
total = time.perf_counter() - started
print(json.dumps({"toAccuracySeconds": reached, "seconds": total, "accuracy": float(model.evaluate(tx, ty, verbose=0)[1])}))
