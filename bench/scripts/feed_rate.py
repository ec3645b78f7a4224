"""Bench user code: says when it is ready, then times one pass over its whole bounded feed.

Prints ``STF_PROGRESS {"kind": "ready"}`` on entry (the bench dispatches the shards only then, so
worker start-up is not counted) and ``{"kind": "consumed", "rows", "seconds"}`` after the pass:
SQS receive, spool, and the tf.data pipeline the model would train on.
"""
import time

import tensorflow as tf

from serverless_tf.worker.progress import progress_line


def train(ctx):
    print(progress_line({"kind": "ready"}), flush=True)
    started = time.perf_counter()
    rows = 0
    for batch in ctx.dataset():
        rows += int(tf.shape(batch["label"])[0])
    print(progress_line({"kind": "consumed", "rows": rows, "seconds": time.perf_counter() - started}), flush=True)
