"""``ctx.write``: match result rows to the batch they answer, encode them with the output columns
+ ``__row_id``, and send them at once.

One implementation for both ``ctx`` objects: the worker's (:mod:`.context`) and the inference
server's (:mod:`serverless_tf.serve`). :class:`BatchAnswers` ties a write to the batch
``ctx.dataset()`` yielded last, :func:`rows_from_outputs` turns what the user wrote into rows,
:func:`encode_rows` makes their examples.

Output messages follow docs/protocol.md "Output messages": ``rows`` messages (split to stay
under the SQS body limit) as soon as ``write`` is called, ``end-of-output`` when the entry returns.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from ..protocol.schema import ROW_ID, ROW_ID_COLUMN, Column
from ..protocol.tfrecord import FRAME_OVERHEAD, frame_records

# SQS's limit (every queue of a job is created with MaximumMessageSize at it, src/jobs/queues.ts); the envelope budget leaves room for the JSON around `data`.
SQS_MAX_MESSAGE_BYTES = 1_048_576
ENVELOPE_BYTES = 1_024


class OutputError(ValueError):
    """``ctx.write`` received outputs that do not match the batch or the output columns."""


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def pack(records: Sequence[bytes], budget: int) -> list[list[bytes]]:
    """Groups records so that each group's framed base64 size fits ``budget`` bytes.

    Raises:
        OutputError: when one record alone is larger than the budget.
    """
    groups: list[list[bytes]] = []
    group: list[bytes] = []
    size = 0
    for i, r in enumerate(records):
        one = len(r) + FRAME_OVERHEAD
        if _b64_len(one) > budget:
            raise OutputError(f"output row {i} encodes to {len(r)} bytes, over the SQS message budget of {budget} base64 bytes; shrink the output columns")
        if group and _b64_len(size + one) > budget:
            groups.append(group)
            group, size = [], 0
        group.append(r)
        size += one
    if group:
        groups.append(group)
    return groups


def _to_python(value: Any) -> Any:
    """Tensors / numpy values to plain Python (lists, ints, floats, bytes)."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value


def rows_from_outputs(outputs: Any, columns: Sequence[Column], count: int) -> list[dict[str, Any]]:
    """Turns what the user passed to ``ctx.write`` into ``count`` row dicts.

    Args:
        outputs: a dict column -> array-like with the batch dimension first; a list of row
            dicts; or, with exactly one output column, that column's array-like.
        columns: the output columns.
        count: rows of the batch being answered.

    Returns:
        One dict per row, keyed by output column name.

    Raises:
        OutputError: on a missing column or a row count different from ``count``.
    """
    names = [c.name for c in columns]
    if isinstance(outputs, Sequence) and not isinstance(outputs, (str, bytes)) and outputs and isinstance(outputs[0], Mapping):
        rows = [dict(r) for r in outputs]
    else:
        if not isinstance(outputs, Mapping):
            if len(names) != 1:
                raise OutputError(
                    f"ctx.write received a {type(outputs).__name__}, but there are {len(names)} output columns {names}; "
                    "pass a dict {column: values}"
                )
            outputs = {names[0]: outputs}
        missing = [n for n in names if n not in outputs]
        if missing:
            raise OutputError(f"ctx.write is missing output column(s) {missing}. Received keys: {sorted(outputs)}; expected {names}")
        columns_values: dict[str, list[Any]] = {}
        for c in columns:
            values = _to_python(outputs[c.name])
            if not isinstance(values, list):
                raise OutputError(f"output column {c.name!r} needs one value per row (batch dimension first). Received: {values!r:.200}")
            if _is_scalar(c):
                # A Dense(1) head gives shape (batch, 1): accept it for a scalar column.
                values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
            columns_values[c.name] = values
        lengths = {n: len(v) for n, v in columns_values.items()}
        if len(set(lengths.values())) > 1:
            raise OutputError(f"output columns have different row counts: {lengths}; every column needs one value per row")
        n = next(iter(lengths.values()))
        rows = [{name: columns_values[name][i] for name in names} for i in range(n)]
    if len(rows) != count:
        raise OutputError(
            f"ctx.write received {len(rows)} rows, but the batch it answers has {count}; "
            "write exactly one output row per input row of the batch ctx.dataset() yielded last"
        )
    return rows


def _is_scalar(column: Any) -> bool:
    return getattr(column, "shape", None) == "scalar" or getattr(column, "is_scalar", False) is True


class BatchAnswers:
    """The ``__row_id`` values of the batch ``ctx.dataset()`` yielded last: what the next ``ctx.write`` answers.

    Example:
        >>> answers = BatchAnswers()
        >>> for batch in answers.track(batches):  # doctest: +SKIP
        ...     answers.answer(model(batch), columns, deliver=writer.send)
    """

    def __init__(self) -> None:
        self._row_ids: Optional[list[int]] = None

    def track(self, batches: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """Yields ``batches``, remembering the ``__row_id`` of each one yielded."""
        for batch in batches:
            if ROW_ID in batch:
                self._row_ids = [int(v) for v in batch[ROW_ID].numpy().tolist()]
            yield batch

    def answer(self, outputs: Any, columns: Sequence[Column], deliver: Callable[[list[dict[str, Any]], list[int]], Any]) -> int:
        """Turns ``outputs`` into one row per row of the last batch and hands them with its row ids to ``deliver``.

        The batch counts as answered once ``deliver`` returned: after an error (bad outputs, a
        failed send) the same batch can be written again.

        Returns:
            Rows written.

        Raises:
            OutputError: no batch to answer (none yielded yet, or already answered), a missing column, or a row count other than the batch's.
        """
        if self._row_ids is None:
            raise OutputError("ctx.write was called before ctx.dataset() yielded a batch, or twice for one batch; write once per batch")
        row_ids = self._row_ids
        rows = rows_from_outputs(outputs, columns, len(row_ids))
        deliver(rows, row_ids)
        self._row_ids = None
        return len(rows)


def encode_rows(rows: Sequence[Mapping[str, Any]], row_ids: Sequence[int], columns: Sequence[Column]) -> list[bytes]:
    """Serialized examples of ``rows`` with the output ``columns`` and each row's ``__row_id``."""
    from ..protocol.example import encode_example  # TensorFlow: loaded only once there is output to encode

    all_columns = list(columns) + [ROW_ID_COLUMN]
    return [encode_example({**row, ROW_ID: int(rid)}, all_columns) for row, rid in zip(rows, row_ids)]


@dataclass
class OutputWriter:
    """Sends output rows of one member to the output queue.

    Example:
        >>> writer = OutputWriter(client("sqs"), url, "tr-1", "worker-0", columns)  # doctest: +SKIP
        >>> writer.send([{"digit": 3, "score": 0.9}], row_ids=[41])
    """

    sqs: Any
    url: str
    job_id: str
    member: str
    columns: Sequence[Column]
    seq: int = 0
    rows: int = 0
    max_body_bytes: int = SQS_MAX_MESSAGE_BYTES
    #: Called before every write; raises when the member no longer holds its lease (``LeaseKeeper.check``).
    fence: Callable[[], None] = field(default=lambda: None, repr=False)

    def send(self, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[int]) -> int:
        """Encodes ``rows`` with their ``__row_id`` and sends them now, split under the size limit.

        Returns:
            The number of output messages sent.
        """
        records = encode_rows(rows, row_ids, self.columns)
        sent = 0
        for group in pack(records, self.max_body_bytes - ENVELOPE_BYTES):
            body = {
                "v": 1, "kind": "rows", "job": self.job_id, "member": self.member, "seq": self.seq,
                "count": len(group), "data": base64.b64encode(frame_records(group)).decode("ascii"),
            }
            self.fence()
            self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")))
            self.seq += 1
            self.rows += len(group)
            sent += 1
        return sent

    def end(self) -> None:
        """Sends ``end-of-output`` with the total rows written."""
        body = {"v": 1, "kind": "end-of-output", "job": self.job_id, "member": self.member, "rows": self.rows}
        self.fence()
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")))
