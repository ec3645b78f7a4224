"""Integration-test user code: reports what ctx.dataset() delivers, trains a tiny model, exports it.

``train`` prints one ``STF_PROGRESS`` line (which ``fit(..., {onProgress})`` receives) with the rows
of one pass over the dataset the model trains on: ``rows`` (batch rows, padding included),
``real_rows`` (rows with ``__mask`` 1, or all rows without a mask), ``batches`` and ``ids``
(``round(x[0] * 1e6)`` of each real row: the tests build ``x[0] = i / count``).
Hyper-parameters: ``units`` (outputs of the Dense layer, default 1), ``export`` (default true).
"""
import tensorflow as tf

from serverless_tf.worker.progress import progress_line


def train(ctx):
    ds = ctx.dataset()
    rows, real_rows, batches, ids = 0, 0.0, 0, []
    for batch in ds:  # one eager pass: what the model sees per epoch
        n = int(tf.shape(batch["x"])[0])
        rows += n
        real_rows += float(tf.reduce_sum(batch["__mask"])) if "__mask" in batch else n
        batches += 1
        # x[0] is i / count for row i: which rows, not only how many (the tests compare ids)
        first = batch["x"][:, 0] if "__mask" not in batch else tf.boolean_mask(batch["x"][:, 0], batch["__mask"] > 0)
        ids.extend(int(round(float(v) * 1e6)) for v in first.numpy())
    print(progress_line({"kind": "dataset", "rows": rows, "real_rows": round(real_rows), "batches": batches,
                         "rows_seen": ctx.rows_seen, "steps": ctx.steps, "ids": sorted(ids)}), flush=True)

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
