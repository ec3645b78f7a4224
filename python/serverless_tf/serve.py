"""The inference server: ``python -m serverless_tf.serve``, one long-lived process per warm container.

The inference function (functions/inference, functions/inference/engine.ts) keeps one of these per
container and talks to it over stdin/stdout, one JSON object per line (docs/protocol.md
"Inference server"). It loads a model version once (the user's inference scripts and the
SavedModel, through the same ``ctx.load_model`` the workers use) and runs the model's inference
entry unchanged on each batch: ``ctx.dataset()`` yields that batch, ``ctx.write`` answers it.

The function stages the version's files (the SavedModel and the scripts) on local disk before
``load``, so this process, which runs user code, gets no AWS credentials and needs none
(functions/inference/engine.ts ``engineEnvironment``).

Requests and answers::

    {"id": 1, "op": "load", "version": V, "artifactDir": <local SavedModel dir>, "scriptFiles": [<local paths>], "entry": "predict",
     "hyperParams": {...}, "input": [Column...], "output": [Column...]}
    -> {"id": 1, "ok": true, "version": V, "ms": 812.5}
    {"id": 2, "op": "predict", "version": V, "data": "<base64 TFRecord frames, input cols + __row_id>"}
    -> {"id": 2, "ok": true, "version": V, "data": "<base64 frames, output cols + __row_id>", "ms": 3.1}
    -> {"id": 2, "ok": false, "error": "...", "type": "OutputError"}

The user's prints go to stderr: stdout carries only answers. ``ctx.dataset()`` / ``ctx.write``
are the worker's own (:mod:`serverless_tf.worker.output`), so an entry meets the same checks here.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, TextIO

from .protocol.schema import ROW_ID_COLUMN, Column, columns_from_json
from .protocol.tfrecord import frame_records, unframe_records
from .worker.output import BatchAnswers, encode_rows


_models: dict[str, Any] = {}


class ServeError(RuntimeError):
    """A request the server cannot run: unknown op, predict before load, a version it does not hold."""


@dataclass
class ServeContext:
    """The ``ctx`` an inference entry receives in the server: the subset of the worker context
    an inference entry uses (``load_model``, ``dataset``, ``write``, ``hyper_params``)."""

    hyper_params: Mapping[str, Any]
    artifact_dir: str
    output_columns: Sequence[Column] = field(repr=False)
    batch: Optional[dict[str, Any]] = field(default=None, repr=False)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    row_ids: list[int] = field(default_factory=list, repr=False)
    _answers: BatchAnswers = field(default_factory=BatchAnswers, repr=False)
    mode: str = "inference"
    role: str = "worker"
    index: int = 0
    is_chief: bool = True

    def strategy(self) -> Any:
        import tensorflow as tf

        return tf.distribute.get_strategy()

    def load_model(self) -> Any:
        """The SavedModel of the version being served (loaded once per process and version)."""
        if self.artifact_dir not in _models:
            import tensorflow as tf

            _models.clear()  # one version at a time: the previous one is not served again
            _models[self.artifact_dir] = tf.keras.models.load_model(self.artifact_dir)
        return _models[self.artifact_dir]

    def dataset(self) -> Iterator[Mapping[str, Any]]:
        """The one batch of this request (a dict of tensors with ``__row_id``)."""
        return self._answers.track([] if self.batch is None else [self.batch])

    def write(self, outputs: Any) -> int:
        """Keeps the results of the batch; the server answers the request with them (see ``Context.write``)."""
        return self._answers.answer(outputs, self.output_columns, self._keep)

    def _keep(self, rows: list[dict[str, Any]], row_ids: list[int]) -> None:
        self.rows.extend(rows)
        self.row_ids.extend(row_ids)


@dataclass
class Loaded:
    version: str
    entry: Callable[[Any], Any]
    make_ctx: Callable[[], ServeContext]
    parse: Callable[[list[bytes]], dict[str, Any]]
    encode: Callable[[list[dict[str, Any]], list[int]], bytes]


class Server:
    """Holds the version being served and answers requests (see the module docstring)."""

    def __init__(self) -> None:
        self.loaded: Optional[Loaded] = None

    def load(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from .protocol.example import parse_rows
        from .worker.user_code import load_entry

        version = str(request["version"])
        if self.loaded is not None and self.loaded.version == version:
            return {"version": version}
        inputs = columns_from_json(list(request["input"])) + [ROW_ID_COLUMN]
        outputs = columns_from_json(list(request["output"]))
        entry = load_entry([Path(p) for p in request["scriptFiles"]], str(request["entry"]))
        artifact, hyper = str(request["artifactDir"]), dict(request.get("hyperParams") or {})

        def make_ctx() -> ServeContext:
            return ServeContext(hyper, artifact, outputs)

        def encode(rows: list[dict[str, Any]], ids: list[int]) -> bytes:
            return frame_records(encode_rows(rows, ids, outputs))

        candidate = Loaded(version, entry, make_ctx, parse_rows(inputs), encode)
        make_ctx().load_model()  # load now, so the first predict of this version is fast
        self.loaded = candidate
        return {"version": version}

    def predict(self, request: Mapping[str, Any]) -> dict[str, Any]:
        loaded = self.loaded
        if loaded is None or loaded.version != request.get("version"):
            raise ServeError(f"predict for version {request.get('version')!r}, but the server holds {loaded.version if loaded else 'none'}; send load first")
        records = unframe_records(base64.b64decode(request["data"]))
        ctx = loaded.make_ctx()
        ctx.batch = loaded.parse(records)
        loaded.entry(ctx)
        if len(ctx.rows) != len(records):
            raise ServeError(f"the inference entry wrote {len(ctx.rows)} rows for a batch of {len(records)}; call ctx.write once per batch ctx.dataset() yields")
        return {"version": loaded.version, "data": base64.b64encode(loaded.encode(ctx.rows, ctx.row_ids)).decode("ascii")}

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        op = request.get("op")
        try:
            if op == "load":
                answer = self.load(request)
            elif op == "predict":
                answer = self.predict(request)
            else:
                raise ServeError(f"unknown op. Received: op={op!r}; expected load or predict")
            return {"id": request.get("id"), "ok": True, **answer, "ms": round((time.perf_counter() - started) * 1000, 3)}
        except Exception as e:  # every failure is answered; the process keeps serving
            traceback.print_exc(file=sys.stderr)
            return {"id": request.get("id"), "ok": False, "type": type(e).__name__, "error": str(e)}


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answers one JSON request per line until ``requests`` ends."""
    server = Server()
    answers.write(json.dumps({"id": 0, "ok": True, "ready": True}) + "\n")
    answers.flush()
    for line in requests:
        if not line.strip():
            continue
        answers.write(json.dumps(server.handle(json.loads(line)), separators=(",", ":")) + "\n")
        answers.flush()


def main() -> int:
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the user's prints (and TensorFlow's) go to stderr; stdout is the answer channel
    sys.stdout = sys.stderr
    import tensorflow  # noqa: F401 - import before "ready", so the first request does not pay for it

    serve(sys.stdin, answers)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)
