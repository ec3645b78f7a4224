"""A one-weight model for the inference tests: y = w * x, so each version's outputs are known.

``TF_USE_LEGACY_KERAS=1 python scale_model.py OUT W [OUT W ...]`` saves a SavedModel with weight W under each OUT. ``predict`` is the
inference entry, ``train`` a bounded training entry and ``train_stream`` a streaming one (both learn y = w x from their rows).
``predict_reporting_env`` answers each row with the number of credential or stack settings in its process's environment.
"""
import os
import sys

import tensorflow as tf


def build(w=1.0):
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(w))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
    return model


def predict(ctx):
    model = ctx.load_model()
    for batch in ctx.dataset():
        ctx.write({"y": model(tf.reshape(batch["x"], (-1, 1)), training=False)[:, 0]})


def predict_reporting_env(ctx):
    model = ctx.load_model()
    exposed = [k for k in os.environ if k.startswith("AWS_") or k.startswith("SERVERLESS_TF_")]
    print(f"[scale_model] settings in the engine's environment: {sorted(exposed)}", file=sys.stderr)
    for batch in ctx.dataset():
        y = model(tf.reshape(batch["x"], (-1, 1)), training=False)[:, 0]
        ctx.write({"y": tf.zeros_like(y) + float(len(exposed))})


def train(ctx):
    model = build(0.0)
    ds = ctx.dataset().map(lambda f: (tf.reshape(f["x"], (-1, 1)), tf.reshape(f["y"], (-1, 1))))
    model.fit(ds, epochs=ctx.hyper_params.get("epochs", 1), callbacks=ctx.callbacks(), verbose=0)
    ctx.export(model)


def train_stream(ctx):
    model = build(0.0)
    ctx.restore_or_initialize(model)
    batches = ((tf.reshape(b["x"], (-1, 1)), tf.reshape(b["y"], (-1, 1))) for b in ctx.dataset())
    model.fit(batches, epochs=1, callbacks=ctx.callbacks(), verbose=0)
    ctx.export(model)


if __name__ == "__main__":
    for out, w in zip(sys.argv[1::2], sys.argv[2::2]):
        build(float(w)).save(out)
