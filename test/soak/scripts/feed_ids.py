"""Soak user script: consumes its feed once and records every row id it saw, duplicates included.

Writes ``jobs/<job>/output/ids-<member>.json`` (``{"ids": [...]}`` in the order consumed) so the
test can compare the ids that reached training with the table's, then exports a tiny model
(a bounded training entry must export).
"""
import json

import tensorflow as tf


def train(ctx):
    ids = []
    for batch in ctx.dataset():
        ids.extend(int(i) for i in batch["id"].numpy().reshape(-1).tolist())
    ctx.s3.put_object(Bucket=ctx.spec.bucket, Key=f"jobs/{ctx.job_id}/output/ids-{ctx.member}.json", Body=json.dumps({"ids": ids}).encode())
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    ctx.export(model)
