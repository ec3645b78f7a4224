"""``ctx``: what the user's entry function receives (the README's "Using it" section).

Example (the user's model.py)::

    def train(ctx):
        with ctx.strategy().scope():
            model = build_model(ctx.hyper_params)
        ctx.restore_or_initialize(model)
        model.fit(ctx.dataset().map(to_xy), epochs=ctx.hyper_params["epochs"], callbacks=ctx.callbacks())
        ctx.export(model)

    def predict(ctx):
        model = ctx.load_model()
        for batch in ctx.dataset():
            ctx.write({"score": model(batch["x"])})
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from ..input.feed import FeedQueue
from ..input.live_feed import LiveBatches
from ..input.remainder import batch_sizes, spool_batches, spool_dataset, warm_spool_pipeline
from ..input.spool import Spool, SpoolTimes, spool_bounded_feed
from ..protocol.names import member_name
from ..protocol.schema import ROW_ID_COLUMN
from ..protocol.spec import JobSpec
from ..registry import JOB_ENDING_STATES, Progress, Registry
from .export import Serving, SignatureExport, export_model, load_saved_model, next_version, restore_weights, save_checkpoint
from .output import BatchAnswers, OutputWriter
from .progress import model_step, say


class ContextError(RuntimeError):
    """A ``ctx`` method called in a way the job cannot serve (wrong mode, wrong order)."""


@dataclass
class Context:
    """The worker context handed to the user's entry function.

    Attributes:
        job_id, mode, role, index: who this worker is (``mode`` is ``train`` or ``inference``).
        epoch: the epoch of this member's registration; checkpoints are published under it.
        is_chief: the member that uploads exports and checkpoints: worker 0, or the chief with
            parameter servers.
        attempt: the restart attempt of the member set (0 = first run).
        cluster_spec: ``{"worker": ["host:port", ...], "ps": [...]}`` from the start barrier.
        hyper_params: ``spec.python.hyperParams``.
        spec: the whole parsed :class:`JobSpec`.
        rows_seen: real rows the dataset delivers per pass (bounded training: after the remainder
            policy, known once ``dataset()`` returned), or rows yielded so far (live dataset).
        steps: batches per pass of a bounded dataset (the end-of-data ``steps``).
        step: the last training step seen by the progress callback.
    """

    job_id: str
    mode: str
    role: str
    index: int
    epoch: int
    is_chief: bool
    cluster_spec: Mapping[str, list[str]]
    hyper_params: Mapping[str, Any]
    spec: JobSpec
    registry: Registry = field(repr=False)
    s3: Any = field(repr=False)
    sqs: Any = field(repr=False)
    strategy_object: Any = field(default=None, repr=False)
    attempt: int = 0
    rows_seen: int = 0
    rows_spooled: int = 0
    steps: Optional[int] = None
    #: The step :meth:`restore_or_initialize` resumed from (0: none).
    restored_step: int = 0
    step: int = 0
    #: The last epoch's progress values as JSON, for the heartbeats.
    last_epoch: Optional[str] = None
    #: Seconds per stage of spooling a bounded feed (bench/scripts/feed_rate.py reports them).
    spool_times: SpoolTimes = field(default_factory=SpoolTimes, repr=False)
    #: Signature serving mode: the serving function of exports that name none (the export
    #: callback's), set by ``callbacks(serving=...)`` or the last ``export(model, serving=...)``.
    serving: Optional[Serving] = field(default=None, repr=False)
    #: Called before every write of the job's data (feed deletes, spool parts, output, checkpoints,
    #: exports): the lease keeper's ``check``, so a member that lost its lease writes nothing more.
    fence: Callable[[], None] = field(default=lambda: None, repr=False)
    _dataset: Any = field(default=None, repr=False)
    _answers: BatchAnswers = field(default_factory=BatchAnswers, repr=False)
    _writer: Optional[OutputWriter] = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def member(self) -> str:
        """``<role>-<index>``, the member's name in queues, spool keys and progress."""
        return member_name(self.role, self.index)

    @property
    def initial_epoch(self) -> int:
        """What to pass ``model.fit`` as ``initial_epoch``, so a member resumed from a checkpoint
        trains only the epochs left: the epochs the restored step completed (0 before
        :meth:`restore_or_initialize`, without a checkpoint, or on an unbounded feed)."""
        per_epoch = self.steps_per_epoch if self.spec.cluster.ps else self.steps
        return self.restored_step // per_epoch if per_epoch else 0

    @property
    def steps_per_epoch(self) -> Optional[int]:
        """What to pass ``model.fit`` as ``steps_per_epoch``: the steps of every worker's pass under
        parameter servers (set once :meth:`dataset` returned), else ``None`` (the dataset's own end)."""
        return self.steps * self.spec.cluster.worker if self.spec.cluster.ps and self.steps is not None else None

    def strategy(self) -> Any:
        """The job's ``tf.distribute.Strategy``: ParameterServerStrategy with parameter servers,
        MultiWorkerMirroredStrategy for several workers, else the default."""
        if self.strategy_object is None:
            import tensorflow as tf

            self.strategy_object = tf.distribute.get_strategy()
        return self.strategy_object

    def progress(self) -> Progress:
        """What the heartbeats report: the last step and rows consumed so far (spooled, while spooling)."""
        with self._lock:
            return Progress(step=int(self.step), rows_consumed=int(max(self.rows_seen, self.rows_spooled)), last_epoch=self.last_epoch)

    # -- input --------------------------------------------------------------------------------

    def dataset(self) -> Any:
        """The member's input.

        Bounded training: blocks until the whole feed is spooled, then returns a re-iterable
        ``tf.data.Dataset`` of exactly ``steps`` batches (dicts of features) per the remainder
        policy. With parameter servers (on the chief): once every worker has spooled its own feed,
        a ``DatasetCreator`` whose dataset runs on each worker over that worker's spool, repeated
        (pass ``steps_per_epoch=ctx.steps_per_epoch`` to ``fit``); its ``map`` applies to every
        worker's dataset. Inference or unbounded input: a live iterable of batches as rows arrive,
        each with ``__row_id`` in inference; pass each batch's results to :meth:`write`.

        Calling it again returns the same object.

        Raises:
            FeedIdleError: the feed delivered nothing for the idle timeout.
            FeedError: a malformed message or counts that do not add up.
        """
        if self._dataset is not None:
            return self._dataset
        spec = self.spec
        if spec.cluster.ps:
            if self.role != "chief":
                raise ContextError(f"ctx.dataset() runs on the chief under parameter-server training; {self.member} serves the chief's steps")
            self._dataset = self._per_worker_dataset()
            return self._dataset
        queue = FeedQueue(self.sqs, spec.feed_queue(self.member), self.job_id, self.member, fence=self.fence)
        idle_s = spec.feed_idle_timeout_ms / 1000
        if spec.mode == "train" and spec.bounded:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stf-warm") as warmer:
                warm = warmer.submit(warm_spool_pipeline, spec.input_columns, spec.remainder.policy, spec.batch_size)
                spool, eod = self._spool_feed(queue, idle_s)
                warm.result()
            self._dataset = spool_dataset(spool.path, spec.input_columns, spec.remainder.policy, spool.rows, spec.batch_size, eod.steps)
            with self._lock:
                self.steps = eod.steps
                self.rows_seen = sum(batch_sizes(spec.remainder.policy, spool.rows, spec.batch_size, eod.steps))
            say(f"{self.member} spooled {spool.rows} rows in {spool.messages} messages ({spool.parts} S3 parts; seconds {self.spool_times.as_dict()}); "
                 f"{eod.steps} steps of {spec.batch_size} under {spec.remainder.policy}: {self.rows_seen} rows per pass")
            return self._dataset

        from ..protocol.example import parse_rows  # TensorFlow: the user's environment is set by now

        columns = list(spec.input_columns) + ([ROW_ID_COLUMN] if spec.mode == "inference" else [])
        flush_after = spec.remainder.after_ms if spec.remainder.policy == "flush" and spec.remainder.after_ms is not None else 0

        def on_batch(n: int) -> None:
            with self._lock:
                self.rows_seen += n

        live = LiveBatches(queue, parse_rows(columns), spec.batch_size, flush_after, spec.bounded, idle_s,
                           should_stop=self._job_stopping, on_batch=on_batch)
        self._dataset = _LiveDataset(live, self._answers)
        return self._dataset

    def _spool_feed(self, queue: FeedQueue, idle_s: float) -> tuple[Spool, Any]:
        """This member's whole bounded feed in a local spool (reloading what an earlier run saved in S3)."""
        spec = self.spec
        spool = Spool(self.s3, spec.bucket, self.job_id, self.member, Path(tempfile.mkdtemp(prefix="stf-spool-")), fence=self.fence)

        def on_progress(position: Any) -> None:
            with self._lock:
                self.rows_spooled = position.rows

        if spool.reload() is not None or spool.rows:  # a restarted member: its earlier run's parts are in S3
            say(f"{self.member} reloaded {spool.rows} rows in {spool.parts} spool parts from S3")
        return spool, spool_bounded_feed(queue, spool, idle_s, on_progress, times=self.spool_times)

    def spool_for_chief(self) -> None:
        """A worker under parameter-server training: spools its feed, then records where the chief's
        dataset function finds it on this worker's disk (``Registry.record_spool``)."""
        spec = self.spec
        spool, eod = self._spool_feed(FeedQueue(self.sqs, spec.feed_queue(self.member), self.job_id, self.member, fence=self.fence), spec.feed_idle_timeout_ms / 1000)
        # One path per job, attempt and member, replaced whole: the chief's dataset function names
        # it, and a worker that rejoins the running cluster re-creates it while the chief may
        # already read it again (an open reader keeps the old, identical, file).
        stable = Path(tempfile.gettempdir()) / f"stf-ps-{self.job_id}-a{self.attempt}" / f"{self.member}.tfrecord"
        stable.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spool.path, stable)
        self.registry.record_spool(self.job_id, self.attempt, self.member, str(stable), spool.rows, eod.steps)
        with self._lock:
            self.steps = eod.steps
            self.rows_seen = sum(batch_sizes(spec.remainder.policy, spool.rows, spec.batch_size, eod.steps))
        say(f"{self.member} spooled {spool.rows} rows for the chief: {eod.steps} steps of {spec.batch_size} under {spec.remainder.policy}")

    def _per_worker_dataset(self, poll_s: float = 0.5) -> Any:
        """The chief's dataset under parameter servers, once every worker of this attempt recorded its spool."""
        spec = self.spec
        names = [member_name("worker", i) for i in range(spec.cluster.worker)]
        while True:
            spools = self.registry.spools(self.job_id, self.attempt)
            if all(n in spools for n in names):
                break
            if self._job_stopping():
                raise ContextError(f"job {self.job_id} ended while the chief waited for the workers' spools: {sorted(set(names) - set(spools))} missing")
            time.sleep(poll_s)
        ordered = [spools[n] for n in names]
        steps = {s["steps"] for s in ordered}
        if len(steps) != 1:
            raise ContextError(f"the workers' end-of-data steps differ ({ {n: s['steps'] for n, s in zip(names, ordered)} }); every member of a job runs the same steps")
        step_count = steps.pop()
        sizes = [batch_sizes(spec.remainder.policy, s["rows"], spec.batch_size, step_count) for s in ordered]
        with self._lock:
            self.steps = step_count
            self.rows_seen = sum(sum(s) for s in sizes)
        say(f"{self.member}: {spec.cluster.worker} workers spooled {[s['rows'] for s in ordered]} rows; {step_count} steps each, "
             f"{self.steps_per_epoch} steps per epoch over the cluster")
        return per_worker_dataset([s["path"] for s in ordered], [s["rows"] for s in ordered], sizes, spec.input_columns, spec.remainder.policy, spec.batch_size, step_count)

    def _job_stopping(self) -> bool:
        job = self.registry.get_job(self.job_id)
        return job is None or job.state in JOB_ENDING_STATES

    # -- output -------------------------------------------------------------------------------

    def write(self, outputs: Any) -> int:
        """Sends the results of the batch ``dataset()`` yielded last, at once, to the output queue.

        Args:
            outputs: dict output column -> array-like (batch dimension first), a list of row
                dicts, or (one output column) that column's array-like.

        Returns:
            Rows written.

        Raises:
            OutputError: no batch to answer, a missing column, or a row count other than the batch's.
        """
        spec = self.spec
        if spec.mode != "inference" or not spec.output_columns or not spec.queues.output:
            raise ContextError(f"ctx.write needs an inference job with output columns. Received: mode={spec.mode!r}, output columns={spec.output_columns}")
        return self._answers.answer(outputs, spec.output_columns, self._output().send)

    def end_output(self) -> int:
        """Sends end-of-output (called by the worker after the entry returns); returns the rows written."""
        writer = self._output()
        writer.end()
        return writer.rows

    def _output(self) -> OutputWriter:
        if self._writer is None:
            self._writer = OutputWriter(self.sqs, self.spec.queues.output, self.job_id, self.member, self.spec.output_columns or (), fence=self.fence)
        return self._writer

    # -- training helpers ---------------------------------------------------------------------

    def callbacks(self, serving: Optional[Serving] = None) -> list[Any]:
        """``[progress_callback(), checkpoint_callback()]`` for ``model.fit``, plus the export
        callback on an unbounded job whose spec sets ``export.everySteps`` / ``everySeconds``.

        Args:
            serving: signature serving mode, the serving function the export callback's exports
                use (see :meth:`export`); ``None`` keeps the one given before, if any.
        """
        if serving is not None:
            self.serving = serving
        callbacks = [self.progress_callback(), self.checkpoint_callback()]
        if not self.spec.bounded and (self.spec.export.every_steps or self.spec.export.every_seconds):
            from .callbacks import ExportCallback

            callbacks.append(ExportCallback(self))
        return callbacks

    def progress_callback(self) -> Any:
        """Prints ``STF_PROGRESS {json}`` per epoch and feeds the heartbeat progress (after each
        step; at epoch ends under parameter servers, where tf_keras allows no batch-level callback)."""
        from .callbacks import ProgressCallback, StepProgressCallback

        return ProgressCallback(self) if self.spec.cluster.ps else StepProgressCallback(self)

    def checkpoint_callback(self) -> Any:
        """Saves weights every ``checkpoint.everySteps`` steps / ``everySeconds`` seconds (chief
        uploads); under parameter servers at the first epoch end past each multiple of the steps."""
        from .callbacks import CheckpointCallback, StepCheckpointCallback

        return CheckpointCallback(self) if self.spec.cluster.ps else StepCheckpointCallback(self)

    def restore_or_initialize(self, model: Any) -> int:
        """Resumes from the registry's latest checkpoint, else warm-starts from ``initModelUri``.

        Returns:
            The initial step (the checkpoint's step, else 0).
        """
        latest = self.registry.latest_checkpoint(self.job_id)
        if latest is not None:
            restore_weights(self.s3, model, latest.uri, None)
            self.step = self.restored_step = latest.step
            say(f"{self.member} resumed from checkpoint step {latest.step} at {latest.uri}")
            return latest.step
        if restore_weights(self.s3, model, None, self.spec.init_model_uri):
            say(f"{self.member} warm-started from {self.spec.init_model_uri}")
        return 0

    def save_checkpoint(self, model: Any, step: int) -> Optional[str]:
        """Saves weights at ``step``; the chief uploads them and records the checkpoint in the registry."""
        self.fence()
        uri = save_checkpoint(self.s3, model, self.spec.bucket, self.job_id, self.is_chief, step, self.epoch)
        if uri is not None:  # published only now that every file is there, and only under this member's lease
            self.registry.record_checkpoint(self.job_id, step=step, uri=uri, feed_position=self.rows_seen, role=self.role, index=self.index, epoch=self.epoch)
        return uri

    def export(self, model: Any, serving: Optional[Serving] = None) -> Optional[dict[str, Any]]:
        """Saves the model; the chief uploads it and writes ``export.json`` last.

        A bounded job exports once, to ``model.exportUri``. An unbounded job exports a new
        version each call, to ``model.versionsUri<version>/`` (docs/protocol.md "Exports").
        Every worker must call it (MultiWorkerMirroredStrategy saves collectively). When the
        spec's ``model.inference.servingMode`` is ``signature``, the chief also exports the serving
        signature as ONNX (``serving/model.onnx``), from the input to the output columns of
        ``model.inference``.

        Args:
            model: the trained tf.keras model.
            serving: ``serving(model, features) -> {output column: tensor}``, ``features`` a dict of
                one batch-first tensor per input column; used by signature mode only, so the
                inference entry can call the same function. ``None``: the one given to
                :meth:`callbacks` or to an earlier export, else the model's call on the input
                column's tensor (the features dict when there are several), its output mapped
                onto the output columns (one tensor, a dict by name or a list in order).

        Returns:
            The manifest (chief), else ``None``.

        Raises:
            ServingSignatureError: signature mode, when the serving signature does not fit the output columns.

        Example:
            >>> def serve(model, features):  # doctest: +SKIP
            ...     p = tf.nn.softmax(model(features["pixels"]))
            ...     return {"digit": tf.argmax(p, axis=1), "score": tf.reduce_max(p, axis=1)}
            >>> ctx.export(model, serving=serve)  # doctest: +SKIP
        """
        step = model_step(model, self.step)
        m = self.spec.model
        uri = None if m is None else m.export_uri if self.spec.bounded or m.versions_uri is None else m.versions_uri + next_version(self.job_id) + "/"
        if serving is not None:
            self.serving = serving
        signature = SignatureExport(m.serving_input, m.serving_output, self.serving) if m is not None and m.serving_mode == "signature" else None
        self.fence()
        manifest = export_model(self.s3, model, uri, self.job_id, self.member, self.is_chief, step, signature, once=self.spec.bounded)
        if manifest is not None:
            onnx = f", its serving signature as ONNX at {manifest['serving']['onnx']['key']}" if "serving" in manifest else ""
            say(f"{self.member} exported {len(manifest['files'])} files at step {step} to {uri}{onnx}")
        return manifest

    def load_model(self) -> Any:
        """The model under ``modelArtifactUri`` (a SavedModel prefix), loaded once per process."""
        return load_saved_model(self.s3, self.spec.model_artifact_uri, self.job_id)


def per_worker_dataset(paths: list[str], rows: list[int], sizes: list[list[int]], columns: Any, policy: str, batch_size: int, steps: int, maps: tuple[Any, ...] = ()) -> Any:
    """A tf_keras ``DatasetCreator`` for ParameterServerStrategy: each worker builds, from its own
    spool file, its batches under the remainder policy, repeated; ``map`` adds a transformation.

    The lists are indexed by worker and become constants inside the dataset function: it is traced
    once and runs on every worker, which picks its row with its worker index (captured tensors
    would live on the chief).
    """
    import tensorflow as tf

    def dataset_fn(_input_context: Any) -> Any:
        i = tf.distribute.coordinator.experimental_get_current_worker_index()
        ds = spool_batches(tf.gather(tf.constant(paths), i), columns, policy, tf.gather(tf.constant(rows, tf.int64), i), batch_size, steps,
                           tf.gather(tf.constant(sizes, tf.int64), i)).repeat()
        for fn in maps:
            ds = ds.map(fn)
        return ds.prefetch(tf.data.AUTOTUNE)

    class PerWorkerDataset(tf.keras.utils.experimental.DatasetCreator):
        def map(self, fn: Any) -> Any:
            return per_worker_dataset(paths, rows, sizes, columns, policy, batch_size, steps, maps + (fn,))

    return PerWorkerDataset(dataset_fn)


class _LiveDataset:
    """A live dataset as ``ctx.dataset()`` returns it: its batches, each remembered for ``ctx.write``."""

    def __init__(self, live: LiveBatches, answers: BatchAnswers):
        self._live = live
        self._answers = answers

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return self._answers.track(self._live)

    @property
    def rows_yielded(self) -> int:
        return self._live.rows_yielded

