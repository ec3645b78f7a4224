"""Test user script: counts what ctx.dataset() delivers, fits a tiny tf.keras model, optionally exports.

Prints one ``STF_TEST {json}`` line per fact the tests assert on.
"""
import json
import os

import tensorflow as tf


def _report(**values):
    print("STF_TEST " + json.dumps(values), flush=True)


def train(ctx):
    ds = ctx.dataset()
    rows, real_rows, batches, sizes = 0, 0.0, 0, []
    for batch in ds:  # one eager pass: what the model will see per epoch
        n = int(tf.shape(batch["x"])[0])
        rows += n
        real_rows += float(tf.reduce_sum(batch["__mask"])) if "__mask" in batch else n
        batches += 1
        sizes.append(n)
    _report(kind="dataset", member=ctx.member, rows=rows, real_rows=real_rows, batches=batches, sizes=sizes,
            rows_seen=ctx.rows_seen, steps=ctx.steps, env=os.environ.get("STF_TEST_ENV"),
            secret=os.environ.get("STF_TEST_SECRET"))

    with ctx.strategy().scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse", metrics=["accuracy"])
    ctx.restore_or_initialize(model)

    def to_xy(batch):
        if "__mask" in batch:
            return batch["x"], batch["y"], batch["__mask"]
        return batch["x"], batch["y"]

    model.fit(ds.map(to_xy), epochs=int(ctx.hyper_params.get("epochs", 2)), callbacks=ctx.callbacks(), verbose=0)
    _report(kind="fit", member=ctx.member, step=int(model.optimizer.iterations.numpy()))
    if ctx.hyper_params.get("export"):
        ctx.export(model)
