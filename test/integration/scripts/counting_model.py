"""Integration-test user code: reports what ctx.dataset() delivers, trains a tiny model, exports it.

``train`` prints one ``STF_PROGRESS`` line (which ``fit(..., {onProgress})`` receives) with the rows
of one pass over the dataset the model trains on: ``rows`` (batch rows, padding included),
``real_rows`` (rows with ``__mask`` 1, or all rows without a mask) and ``batches``.
Hyper-parameters: ``units`` (outputs of the Dense layer, default 1), ``export`` (default true).
"""
import tensorflow as tf

from serverless_tf.worker.progress import progress_line


def train(ctx):
    ds = ctx.dataset()
    rows, real_rows, batches = 0, 0.0, 0
    for batch in ds:  # one eager pass: what the model sees per epoch
        n = int(tf.shape(batch["x"])[0])
        rows += n
        real_rows += float(tf.reduce_sum(batch["__mask"])) if "__mask" in batch else n
        batches += 1
    print(progress_line({"kind": "dataset", "rows": rows, "real_rows": round(real_rows), "batches": batches,
                         "rows_seen": ctx.rows_seen, "steps": ctx.steps}), flush=True)

    units = int(ctx.hyper_params.get("units", 1))
    with ctx.strategy().scope():
        model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(units)])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")

    def to_xy(batch):
        y = tf.repeat(tf.expand_dims(batch["y"], 1), units, axis=1)
        return (batch["x"], y, batch["__mask"]) if "__mask" in batch else (batch["x"], y)

    model.fit(ds.map(to_xy), epochs=1, verbose=0)
    if ctx.hyper_params.get("export", True):
        ctx.export(model)


def predict(ctx):
    model = ctx.load_model()
    for batch in ctx.dataset():
        x = batch["x"]
        ctx.write({"doubled": batch["n"] * 2, "total": tf.reduce_sum(x, axis=1), "embedding": model(x)})
