"""The demo's user code: a small Keras classifier for 8x8 handwritten digits.

Runs unchanged on local worker processes and on AWS. `train` is the training entry,
`predict` the inference entry; both receive the worker context `ctx`. `serve` is the one
definition of the model's outputs: `predict` calls it (script serving mode) and `train` exports
it as the serving signature (signature mode, ONNX).
"""
import tensorflow as tf


def build_model(hp):
    return tf.keras.Sequential(
        [
            tf.keras.Input((64,)),
            tf.keras.layers.Rescaling(1.0 / 16.0),
            tf.keras.layers.Dense(hp.get("hidden", 64), activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )


def train(ctx):
    hp = ctx.hyper_params
    # "pad" fills the last batch with zero rows; their __mask of 0 makes them weigh nothing.
    if "seed" in hp:  # the same initial weights in every run of the same hyper-parameters
        tf.keras.utils.set_random_seed(int(hp["seed"]))
    ds = ctx.dataset().map(lambda f: (f["pixels"], f["label"], f["__mask"]) if "__mask" in f else (f["pixels"], f["label"]))
    with ctx.strategy().scope():
        model = build_model(hp)
        model.compile(
            optimizer=tf.keras.optimizers.Adam(hp.get("learning_rate", 0.005)),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    ctx.restore_or_initialize(model)
    # steps_per_epoch: None, except under parameter servers, whose per-worker datasets repeat;
    # initial_epoch: the epochs a checkpoint it resumed from had completed.
    model.fit(ds, epochs=hp.get("epochs", 30), steps_per_epoch=ctx.steps_per_epoch, initial_epoch=ctx.initial_epoch,
              callbacks=ctx.callbacks(), verbose=0)
    ctx.export(model, serving=serve)


def serve(model, features):
    """The output columns from a batch of input features: the most likely digit and its probability."""
    probabilities = tf.nn.softmax(model(features["pixels"], training=False))
    return {"digit": tf.argmax(probabilities, axis=1), "score": tf.reduce_max(probabilities, axis=1)}


def predict(ctx):
    model = ctx.load_model()
    for batch in ctx.dataset():
        ctx.write(serve(model, batch))
