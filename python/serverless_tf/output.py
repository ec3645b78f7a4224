"""``ctx.write``: encode result rows with the output columns + ``__row_id`` and send them at once.

Output messages follow docs/protocol.md "Output messages": ``rows`` messages (split to stay
under the SQS body limit) as soon as ``write`` is called, ``end-of-output`` when the entry returns.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .spec import ROW_ID

# SQS's default and maximum body size; the envelope budget leaves room for the JSON around `data`.
SQS_MAX_MESSAGE_BYTES = 262_144
ENVELOPE_BYTES = 1_024
FRAME_OVERHEAD = 16  # TFRecord: 8-byte length, 4-byte length CRC, 4-byte data CRC


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


def rows_from_outputs(outputs: Any, columns: Sequence[Any], count: int) -> list[dict[str, Any]]:
    """Turns what the user passed to ``ctx.write`` into ``count`` row dicts.

    Args:
        outputs: a dict column -> array-like with the batch dimension first; a list of row
            dicts; or, with exactly one output column, that column's array-like.
        columns: the output columns (``coding.Column``).
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


@dataclass
class OutputWriter:
    """Sends output rows of one member to the output queue.

    Example:
        >>> writer = OutputWriter(client("sqs"), url, "tr-1", "worker-0", columns, row_id_column)  # doctest: +SKIP
        >>> writer.send([{"digit": 3, "score": 0.9}], row_ids=[41])
    """

    sqs: Any
    url: str
    job_id: str
    member: str
    columns: Sequence[Any]
    row_id_column: Any
    seq: int = 0
    rows: int = 0
    max_body_bytes: int = SQS_MAX_MESSAGE_BYTES
    sent_message_ids: list[str] = field(default_factory=list)

    def send(self, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[int]) -> int:
        """Encodes ``rows`` with their ``__row_id`` and sends them now, split under the size limit.

        Returns:
            The number of output messages sent.
        """
        from .coding import encode_example, frame_records

        all_columns = list(self.columns) + [self.row_id_column]
        records = [encode_example({**row, ROW_ID: int(rid)}, all_columns) for row, rid in zip(rows, row_ids)]
        sent = 0
        for group in pack(records, self.max_body_bytes - ENVELOPE_BYTES):
            body = {
                "v": 1, "kind": "rows", "job": self.job_id, "member": self.member, "seq": self.seq,
                "count": len(group), "data": base64.b64encode(frame_records(group)).decode("ascii"),
            }
            response = self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")))
            self.sent_message_ids.append(response.get("MessageId", ""))
            self.seq += 1
            self.rows += len(group)
            sent += 1
        return sent

    def end(self) -> None:
        """Sends ``end-of-output`` with the total rows written."""
        body = {"v": 1, "kind": "end-of-output", "job": self.job_id, "member": self.member, "rows": self.rows}
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")))


def row_id_column(coding: Any) -> Any:
    """The reserved ``__row_id`` column (INT64 scalar) as a ``coding.Column``."""
    return coding.columns_from_json([{"name": ROW_ID, "dtype": "INT64", "shape": "scalar"}])[0]

