"""Bench user code: says when it is ready, then times one pass over its whole bounded feed.

Prints ``STF_PROGRESS {"kind": "ready"}`` on entry (the bench dispatches the shards only then, so
worker start-up is not counted) and ``{"kind": "consumed", "rows", "seconds"}`` after the pass:
SQS receive, spool, and the tf.data pipeline the model would train on, with the seconds of each
spooling stage and of the tf.data pass after it (``spool``, ``tf_data``).
"""
import time

import tensorflow as tf

from serverless_tf.worker.progress import progress_line


def train(ctx):
    print(progress_line({"kind": "ready"}), flush=True)
    started = time.perf_counter()
    rows = 0
    dataset = ctx.dataset()  # returns once the whole feed is spooled
    spooled = time.perf_counter()
    for batch in dataset:
        rows += int(tf.shape(batch["label"])[0])
    seconds = time.perf_counter() - started
    spool = {**ctx.spool_times.as_dict(), "wall": round(spooled - started, 3)}
    print(progress_line({"kind": "consumed", "rows": rows, "seconds": seconds, "spool": spool, "tf_data": round(seconds - (spooled - started), 3)}), flush=True)
