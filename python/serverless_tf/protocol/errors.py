"""The coding errors (as src/codec/errors.ts): a value that does not fit its column, bytes that do not decode."""

from __future__ import annotations

from typing import Any


class SchemaError(ValueError):
    """A value does not fit its column (or a column definition is invalid).

    Attributes:
        column: the column name (or ``#i`` for an unnamed column definition).
        row_index: the row, or ``None`` for a column definition.
        expected: what was allowed.
        received: what was received.
    """

    def __init__(self, column: str, row_index: int | None, expected: str, received: Any, hint: str = "fix the value or the column schema so that they agree") -> None:
        self.column, self.row_index, self.expected, self.received = column, row_index, expected, received
        where = f'column "{column}"' if row_index is None else f'column "{column}" of row {row_index}'
        text = repr(received)
        text = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"{where}: expected {expected}. Received: {text}. To fix: {hint}.")


class DecodeError(ValueError):
    """Bytes are not a well-formed tf.Example or TFRecord stream. ``offset`` is where decoding stopped."""

    def __init__(self, offset: int, reason: str, column: str | None = None) -> None:
        self.offset, self.reason, self.column = offset, reason, column
        where = f"at byte {offset}" if column is None else f'at byte {offset} (column "{column}")'
        super().__init__(
            f"cannot decode {where}: {reason}. The payload is not a valid tf.Example/TFRecord for this schema; "
            "check that producer and consumer use the same columns and that the bytes were not truncated or altered."
        )
