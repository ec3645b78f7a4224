"""Test user script for resume, warm start and the hang watchdog: the digits classifier of the demo,
with checkpoints, resuming at the epoch its restored step falls in.

Reports ``STF_PROGRESS`` lines the tests read through ``fit(table, {onProgress})``:
``{"kind": "pid"}`` (so a test can kill this process), ``{"kind": "restored", "step"}`` right after
``ctx.restore_or_initialize`` with the loss on the first batch, and ``{"kind": "trained"}`` with
the loss on the first batch after training.
"""
import os
import time

import tensorflow as tf

from serverless_tf.worker.progress import progress_line


def _report(ctx, **values):
    print(progress_line({"member_index": ctx.index, "pid": os.getpid(), **values}), flush=True)


class _Pid(tf.keras.callbacks.Callback):
    def __init__(self, ctx):
        super().__init__()
        self._ctx = ctx

    def on_epoch_end(self, epoch, logs=None):
        _report(self._ctx, kind="pid", epoch_done=epoch + 1, step=int(self.model.optimizer.iterations.numpy()))


def build_model(hp):
    return tf.keras.Sequential([
        tf.keras.Input((64,)),
        tf.keras.layers.Rescaling(1.0 / 16.0),
        tf.keras.layers.Dense(hp.get("hidden", 64), activation="relu"),
        tf.keras.layers.Dense(10),
    ])


def _loss(model, batch):
    """The model's loss on one batch, computed eagerly (no collective op: each worker on its own)."""
    x, y = batch[0], batch[1]
    weights = batch[2] if len(batch) > 2 else None
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(loss(y, model(x, training=False), sample_weight=weights))


def train(ctx):
    hp = ctx.hyper_params
    tf.random.set_seed(int(hp.get("seed", 7)))
    ds = ctx.dataset().map(lambda f: (f["pixels"], f["label"], f["__mask"]) if "__mask" in f else (f["pixels"], f["label"]))
    if hp.get("hang"):
        _report(ctx, kind="hanging")
        while True:  # the hang watchdog's test: no step, no heartbeat progress, forever
            time.sleep(3600)
    with ctx.strategy().scope():
        model = build_model(hp)
        model.compile(
            optimizer=tf.keras.optimizers.Adam(hp.get("learning_rate", 0.005)),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    step = ctx.restore_or_initialize(model)
    first = next(iter(ds.take(1)))
    loss_before = _loss(model, first)
    if hp.get("report_source"):  # warm start test: the source model itself and a fresh one on the same batch
        from serverless_tf.worker.export import load_saved_model

        source = load_saved_model(ctx.s3, hp["report_source"], ctx.job_id)
        _report(ctx, kind="source", first_batch_loss=_loss(source, first), fresh_first_batch_loss=_loss(build_model(hp), first))
    _report(ctx, kind="restored", step=step, first_batch_loss=loss_before)
    # A resumed run goes on at the epoch its checkpoint's step falls in.
    initial_epoch = step // max(1, ctx.steps or 1)
    model.fit(ds, epochs=int(hp.get("epochs", 12)), initial_epoch=initial_epoch, callbacks=ctx.callbacks() + [_Pid(ctx)], verbose=0)
    loss_after = _loss(model, first)
    _report(ctx, kind="trained", step=int(model.optimizer.iterations.numpy()), first_batch_loss=loss_after)
    ctx.export(model)


def predict(ctx):
    model = ctx.load_model()
    for batch in ctx.dataset():
        probabilities = tf.nn.softmax(model(batch["pixels"], training=False))
        ctx.write({"digit": tf.argmax(probabilities, axis=1), "score": tf.reduce_max(probabilities, axis=1)})
