"""Keras callbacks ``ctx.callbacks()`` hands out: one progress line per epoch, periodic checkpoints."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

import tensorflow as tf

from .progress import model_step, progress_line, say

if TYPE_CHECKING:
    from .context import Context


class ProgressCallback(tf.keras.callbacks.Callback):
    """Prints ``STF_PROGRESS {"epoch", "loss", "accuracy", "examples_per_sec", "step"}`` per epoch.

    The step also goes to ``ctx.step``, which the lease heartbeats report as ``progress``. This
    class reads it at epoch ends only: tf_keras refuses batch-level callbacks under
    ParameterServerStrategy, whose steps run asynchronously on the workers.
    """

    def __init__(self, ctx: "Context"):
        super().__init__()
        self._ctx = ctx
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        logs = logs or {}
        elapsed = max(time.monotonic() - self._started, 1e-9)
        step = model_step(self.model)
        self._ctx.step = step
        accuracy = logs.get("accuracy", logs.get("acc"))
        values = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]) if "loss" in logs else None,
            "accuracy": float(accuracy) if accuracy is not None else None,
            "examples_per_sec": round(self._ctx.rows_seen / elapsed, 1),
            "step": step,
        }
        line = progress_line(values)
        self._ctx.last_epoch = line[len("STF_PROGRESS "):]
        print(line, flush=True)


class StepProgressCallback(ProgressCallback):
    """:class:`ProgressCallback` that also reads the step after every batch (every strategy but
    parameter servers): the coordinator's hang watchdog reads it from the heartbeats."""

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._ctx.step = model_step(self.model)


class CheckpointCallback(tf.keras.callbacks.Callback):
    """Saves weights every ``checkpoint.everySteps`` steps or ``everySeconds`` seconds (0 = off),
    checked at epoch ends: a save is due once a multiple of ``everySteps`` was passed since the
    last check (parameter servers: tf_keras allows no batch-level callback there).

    Every worker saves (the chief to S3, the others to a throwaway directory), so the decision
    must be the same on all workers: the step rule is; the seconds rule is checked at epoch ends.
    """

    def __init__(self, ctx: "Context"):
        super().__init__()
        self._ctx = ctx
        self._last_at = time.monotonic()
        self._last_step = -1
        self._seen_step = 0

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._seen_step = model_step(self.model)

    def _save(self, step: int) -> None:
        if step == self._last_step:
            return
        uri = self._ctx.save_checkpoint(self.model, step)
        self._last_step, self._last_at = step, time.monotonic()
        if uri:
            say(f"checkpoint at step {step}: {uri}")

    def _step_rule(self) -> int:
        """Saves when the step crossed a multiple of ``everySteps``; returns the step."""
        step = model_step(self.model)
        every = self._ctx.spec.checkpoint.every_steps
        if every > 0:
            self._ctx.step = step
            crossed = step // every > self._seen_step // every
            self._seen_step = step
            if crossed:
                self._save(step)
        return step

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._step_rule()
        every = self._ctx.spec.checkpoint.every_seconds
        if every > 0 and time.monotonic() - self._last_at >= every:
            self._save(model_step(self.model))


class StepCheckpointCallback(CheckpointCallback):
    """:class:`CheckpointCallback` with the step rule checked after every batch (every strategy but
    parameter servers): in lockstep each step is seen, so a save lands exactly on the multiple.
    While ``fit`` runs, SIGTERM makes every worker save at one step, and the noticed one leave
    (python/serverless_tf/worker/preemption.py)."""

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        from .preemption import preemption_for

        self._preemption = preemption_for(ctx)

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        super().on_train_begin(logs)
        self._preemption.start()

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._preemption.stop()

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        step = self._step_rule()
        if self._preemption.after_step(step) == "save":
            self._save(step)
            self._preemption.after_save(step)


class ExportCallback(tf.keras.callbacks.Callback):
    """Unbounded training: exports a new model version every ``export.everySteps`` steps or
    ``export.everySeconds`` seconds (checked after each step), so inference picks it up while
    training goes on. Each export is a new version directory (``ctx.export``)."""

    def __init__(self, ctx: "Context"):
        super().__init__()
        self._ctx = ctx
        self._last_at = time.monotonic()
        self._last_step = -1

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        rule = self._ctx.spec.export
        step = model_step(self.model)
        self._ctx.step = step
        due = (rule.every_steps > 0 and step % rule.every_steps == 0) or (rule.every_seconds > 0 and time.monotonic() - self._last_at >= rule.every_seconds)
        if due and step != self._last_step:
            self._ctx.export(self.model)
            self._last_step, self._last_at = step, time.monotonic()
