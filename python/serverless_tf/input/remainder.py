"""Remainder policies (docs/protocol.md "Remainder policies") on the worker: exactly ``steps`` batches.

Every member runs the same number of steps, announced by end-of-data, because collective ops
(MultiWorkerMirroredStrategy) hang when one worker sees fewer batches than another.
:func:`plan_steps` is the plan over all members (what the feed sender
announces as ``steps``), :func:`batch_sizes` one member's part of it, and :func:`spool_dataset`
turns a spool file into the tf.data pipeline that follows it. The cases of
``test/vectors/remainder.json`` hold this planner and ``planSteps`` in src/protocol/remainder.ts to one
specification.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..protocol.names import member_name
from ..protocol.schema import MASK


class RemainderError(ValueError):
    """A member's row count cannot be batched into the announced number of steps."""


def batch_sizes(policy: str, rows: int, batch_size: int, steps: int) -> list[int]:
    """How many real rows each of the ``steps`` batches holds.

    Args:
        policy: ``drop``, ``pad`` or ``flush``.
        rows: rows this member received.
        batch_size: B.
        steps: S from end-of-data.

    Returns:
        ``steps`` sizes. ``drop``: all B (the rest of the rows is skipped). ``pad``: full batches,
        then one partial, then zeros (padding fills every batch to B). ``flush``: full batches
        first, then the rest spread as evenly as possible so every batch has at least one row.

    Raises:
        RemainderError: when ``rows`` does not fit ``steps`` under ``policy``.

    Example:
        >>> batch_sizes("flush", 10, 3, 5)
        [3, 3, 2, 1, 1]
    """
    if batch_size < 1 or steps < 0 or rows < 0:
        raise RemainderError(f"batch_size must be >= 1 and rows, steps >= 0. Received: rows={rows}, batch_size={batch_size}, steps={steps}")
    context = f"Received: policy={policy!r}, rows={rows}, batch_size={batch_size}, steps={steps}"
    if policy == "drop":
        if rows < steps * batch_size:
            raise RemainderError(f"drop needs rows >= steps * batch_size. {context}; the end-of-data sender computed steps wrongly")
        return [batch_size] * steps
    if policy == "pad":
        if rows > steps * batch_size:
            raise RemainderError(f"pad needs rows <= steps * batch_size. {context}; the end-of-data sender computed steps wrongly")
        full, rest = divmod(rows, batch_size)
        return [batch_size] * full + ([rest] if rest else []) + [0] * (steps - full - (1 if rest else 0))
    if policy == "flush":
        if not steps <= rows <= steps * batch_size:
            raise RemainderError(
                f"flush needs steps <= rows <= steps * batch_size (every batch at least one row). {context}; "
                "feed the members more evenly or use the pad policy"
            )
        if steps == 0:
            return []
        full = rows // batch_size if batch_size == 1 else min(rows // batch_size, (rows - steps) // (batch_size - 1))
        short = steps - full
        rest = rows - full * batch_size
        if short == 0:
            return [batch_size] * full
        q, extra = divmod(rest, short)
        return [batch_size] * full + [q + 1] * extra + [q] * (short - extra)
    raise RemainderError(f"unknown remainder policy. {context}; expected drop, pad or flush")


@dataclass(frozen=True)
class StepPlan:
    """What a bounded feed of several members runs: as ``StepPlan`` in src/protocol/remainder.ts, plus each member's batch sizes."""

    #: Steps (batches) every member runs: the end-of-data ``steps``.
    steps: int
    #: Real rows that reach training per pass, over all members.
    rows_seen: int
    #: Per member, the real rows of each of its ``steps`` batches (:func:`batch_sizes`).
    batch_sizes: tuple[tuple[int, ...], ...]


def plan_steps(rows_per_member: Sequence[int], batch_size: int, policy: str) -> StepPlan:
    """The steps every member runs under ``policy``, and the rows that reach training.

    ``drop``: the fewest full batches of any member. ``pad`` and ``flush``: the most batches any
    member needs (``ceil(rows / batch_size)``); ``flush`` then needs every member to have at least
    that many rows (each batch holds one or more).

    Raises:
        RemainderError: ``batch_size`` below 1, an unknown policy, or (``flush``) a member with fewer rows than steps.

    Example:
        >>> plan_steps([17, 13], 4, "flush")
        StepPlan(steps=5, rows_seen=30, batch_sizes=((4, 4, 4, 4, 1), (4, 4, 2, 2, 1)))
    """
    if batch_size < 1:
        raise RemainderError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if not rows_per_member:
        return StepPlan(0, 0, ())
    if policy == "drop":
        steps = min(n // batch_size for n in rows_per_member)
    elif policy in ("pad", "flush"):
        steps = max(math.ceil(n / batch_size) for n in rows_per_member)
    else:
        raise RemainderError(f"unknown remainder policy. Received: policy={policy!r}; expected drop, pad or flush")
    sizes: list[tuple[int, ...]] = []
    for index, rows in enumerate(rows_per_member):
        try:
            sizes.append(tuple(batch_sizes(policy, rows, batch_size, steps)))
        except RemainderError as e:
            raise RemainderError(f"{member_name('worker', index)} cannot run the {steps} steps of the plan: {e}") from None
    return StepPlan(steps, sum(sum(s) for s in sizes), tuple(sizes))


def spool_dataset(
    path: Path,
    columns: Sequence[Any],
    policy: str,
    rows: int,
    batch_size: int,
    steps: int,
) -> Any:
    """A re-iterable ``tf.data.Dataset`` of exactly ``steps`` parsed batches over a spool file.

    Args:
        path: the local TFRecord spool.
        columns: the input columns (:class:`~serverless_tf.protocol.schema.Column`).
        policy, rows, batch_size, steps: as in :func:`batch_sizes`.

    Padding rows (``pad``) and the placeholders filtered out after batching (``flush``) are
    examples of zero values (:func:`~serverless_tf.protocol.example.zero_example`).

    Returns:
        Batches as dicts of feature tensors (var-len columns as ``tf.RaggedTensor``); under
        ``pad`` every batch also has ``__mask`` (FLOAT32, 1.0 real, 0.0 padding).
    """
    import tensorflow as tf

    ds = spool_batches(str(path), columns, policy, rows, batch_size, steps, batch_sizes(policy, rows, batch_size, steps))
    # A batch ready before the step asks for it: the tuned tf.data pipeline the feed bench compares with (bench/feed.ts).
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker already receives its own feed: sharding it again would drop rows.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def warm_spool_pipeline(columns: Sequence[Any], policy: str, batch_size: int) -> None:
    """Builds and runs :func:`spool_dataset` once over a one-row file.

    TensorFlow's first build of a dataset's functions in a process costs about 0.4 s (later ones
    a tenth of that; bench/feed.ts), so a worker pays it while its feed is still arriving.
    """
    import tempfile

    import tensorflow as tf

    from ..protocol.example import zero_example

    with tempfile.TemporaryDirectory(prefix="stf-warm-") as directory:
        path = Path(directory) / "warm.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(zero_example(columns))
        for _ in spool_dataset(path, columns, policy, 1, batch_size, 0 if policy == "drop" else 1):
            pass


def spool_batches(path: Any, columns: Sequence[Any], policy: str, rows: Any, batch_size: int, steps: Any, sizes: Any) -> Any:
    """The ``steps`` parsed batches of a spool file under ``policy``, in spool order.

    ``path``, ``rows``, ``steps`` and ``sizes`` (the :func:`batch_sizes`) may be Python values or
    tensors: under parameter-server training one dataset function serves every worker, which
    looks its own spool up by its worker index (python/serverless_tf/worker/context.py).

    Rows are batched as they are read and padded per batch: a step per row in tf.data (a map, a
    choice between datasets) halves its rate (bench/feed.ts), so only the short batches of
    ``flush``, at most the last ``steps - full`` ones, are assembled row by row.
    """
    import tensorflow as tf

    from ..protocol.example import parse_examples, zero_example

    # No control flow here depends on a tensor, so autograph has nothing to convert; transpiling
    # these functions and the parsing they call took over a second of a worker's CPU, during its feed.
    plain = tf.autograph.experimental.do_not_convert
    B = batch_size
    steps = tf.cast(steps, tf.int64)
    zero = tf.constant(zero_example(columns))
    real = tf.data.TFRecordDataset(path)
    if policy == "drop":
        ds = real.take(steps * B).batch(B).map(plain(lambda s: (s, tf.ones(tf.shape(s)))))
    elif policy == "pad":
        # Full batches, one short batch padded to B, then batches of padding only.
        def pad(serialized: Any) -> Any:
            short = B - tf.shape(serialized)[0]
            return tf.concat([serialized, tf.fill([short], zero)], 0), tf.concat([tf.ones(tf.shape(serialized)), tf.zeros([short])], 0)

        with_rows = (tf.cast(rows, tf.int64) + B - 1) // B
        ds = real.batch(B).map(plain(pad)).concatenate(tf.data.Dataset.from_tensors((tf.fill([B], zero), tf.zeros([B]))).repeat(steps - with_rows))
    else:
        # sizes never grow (batch_sizes): the full batches lead, then the short ones, where batch j
        # takes sizes[j] real rows and B - sizes[j] placeholders that are masked out after batching.
        sizes = tf.cast(sizes, tf.int64)
        full = tf.reduce_sum(tf.cast(tf.equal(sizes, B), tf.int64))
        placeholders = tf.data.Dataset.from_tensors((zero, tf.constant(0.0))).repeat()
        choice = tf.data.Dataset.from_tensor_slices(sizes[full:]).flat_map(plain(
            lambda n: tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat(n).concatenate(
                tf.data.Dataset.from_tensors(tf.constant(1, tf.int64)).repeat(B - n)
            )
        ))
        tail = tf.data.Dataset.choose_from_datasets([real.skip(full * B).map(plain(lambda s: (s, tf.constant(1.0)))), placeholders], choice).batch(B)
        ds = real.take(full * B).batch(B).map(plain(lambda s: (s, tf.ones(tf.shape(s))))).concatenate(
            tail.map(plain(lambda s, m: (tf.boolean_mask(s, m > 0), tf.boolean_mask(m, m > 0))))
        )

    def parse(serialized: Any, mask: Any) -> dict[str, Any]:
        features = dict(parse_examples(serialized, columns))
        if policy == "pad":
            features[MASK] = mask
        return features

    # Batched parsing in parallel, in order.
    return ds.map(plain(parse), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
