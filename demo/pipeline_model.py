"""The pipeline demo's user code (also used by test/integration/pipeline.test.ts): a small classifier over one numeric list column.

Hyper-parameters: ``input_col`` (the feature column, already scaled by a StandardScaler stage),
``label_col`` (default ``label``), ``epochs``, ``hidden``, ``seed``. ``predict`` writes the raw
scores as ``output_col`` (default ``logits``, FLOAT32[10]); an ArgMax stage turns them into a class.
"""
import json
import os

import tensorflow as tf


def _announce(ctx, kind):
    print("STF_PROGRESS " + json.dumps({"kind": kind, "job": ctx.job_id, "pid": os.getpid()}), flush=True)


def train(ctx):
    hp = ctx.hyper_params
    tf.random.set_seed(int(hp.get("seed", 7)))
    _announce(ctx, "train")
    x_col, y_col = hp["input_col"], hp.get("label_col", "label")
    ds = ctx.dataset().map(lambda f: (f[x_col], f[y_col], f["__mask"]) if "__mask" in f else (f[x_col], f[y_col]))
    with ctx.strategy().scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(int(hp.get("hidden", 32)), activation="relu"),
            tf.keras.layers.Dense(10),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(float(hp.get("learning_rate", 0.005))),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    ctx.restore_or_initialize(model)
    model.fit(ds, epochs=int(hp.get("epochs", 10)), callbacks=ctx.callbacks(), verbose=0)
    ctx.export(model)


def predict(ctx):
    _announce(ctx, "predict")
    model = ctx.load_model()
    x_col = ctx.hyper_params.get("input_col", "pixels")
    for batch in ctx.dataset():
        ctx.write({ctx.hyper_params.get("output_col", "logits"): model(batch[x_col], training=False)})
