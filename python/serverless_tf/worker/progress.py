"""What a worker reports: the ``STF_PROGRESS {json}`` line, a model's step, and its ``[serverless-tf]`` notices.

The launcher reads ``STF_PROGRESS`` lines from the worker's stdout (``PROGRESS_PREFIX`` in
src/workers/process-launcher.ts) and hands them to ``fit(..., {onProgress})``; user code may
print its own with :func:`progress_line`.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Mapping


def progress_line(values: Mapping[str, Any]) -> str:
    """The ``STF_PROGRESS {json}`` line the progress callback prints."""
    return "STF_PROGRESS " + json.dumps(dict(values), separators=(",", ":"))


def model_step(model: Any, fallback: int = 0) -> int:
    """The optimizer's iteration count of ``model``: its training step, or ``fallback`` when it has no optimizer (not compiled)."""
    try:
        return int(model.optimizer.iterations.numpy())
    except Exception:  # an uncompiled model has no optimizer
        return int(fallback)


def say(message: str) -> None:
    """A ``[serverless-tf] ...`` notice on stderr, where the launcher keeps a member's log tail."""
    print(f"[serverless-tf] {message}", file=sys.stderr, flush=True)
