"""Hypothesis properties of serverless_tf.protocol's coding: round trips and only typed errors on hostile bytes."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_tf.protocol.errors import DecodeError, SchemaError
from serverless_tf.protocol.example import decode_example, encode_example
from serverless_tf.protocol.schema import DTYPES, Column, Fixed
from serverless_tf.protocol.tfrecord import frame_records, unframe_records

VALUES = {
    "FLOAT32": st.floats(width=32),  # NaN, ±inf, -0.0 and subnormals included; all exact in float32
    "FLOAT64": st.floats(),
    "INT32": st.integers(-(2**31), 2**31 - 1),
    "INT64": st.integers(-(2**63), 2**63 - 1),
    "STRING": st.text(max_size=8),
    "BYTES": st.binary(max_size=8),
}
SHAPES = st.one_of(st.just("scalar"), st.just("var"), st.integers(0, 3).map(Fixed))


@st.composite
def schema_and_row(draw: st.DrawFn) -> tuple[list[Column], dict[str, Any]]:
    names = draw(st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=5))
    columns = [Column(n, draw(st.sampled_from(DTYPES)), draw(SHAPES)) for n in names]
    row: dict[str, Any] = {}
    for c in columns:
        one = VALUES[c.dtype]
        if c.shape == "scalar":
            row[c.name] = draw(one)
        elif c.shape == "var":
            row[c.name] = draw(st.lists(one, max_size=4))
        else:
            row[c.name] = draw(st.lists(one, min_size=c.shape.fixed, max_size=c.shape.fixed))
    return columns, row


def bits(c: Column, v: Any) -> Any:
    """Floats compared by bit pattern, so NaN == NaN and -0.0 != 0.0."""
    if c.dtype == "FLOAT32":
        return struct.pack("<f", v)
    if c.dtype == "FLOAT64":
        return struct.pack("<d", v)
    return v


@settings(max_examples=200, deadline=None)
@given(schema_and_row())
def test_decode_of_encode_gives_the_row_back(case: tuple[list[Column], dict[str, Any]]) -> None:
    columns, row = case
    decoded = decode_example(encode_example(row, columns), columns)
    for c in columns:
        want, got = row[c.name], decoded[c.name]
        if isinstance(want, list):
            assert [bits(c, v) for v in got] == [bits(c, v) for v in want]
        else:
            assert bits(c, got) == bits(c, want)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_raises_only_typed_errors(data: bytes) -> None:
    try:
        decode_example(data, [Column("a", "STRING", "var"), Column("b", "INT32")])
    except (DecodeError, SchemaError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=4), st.integers(min_value=0), st.integers(1, 255))
def test_unframe_round_trips_and_raises_only_decode_error_on_corruption(records: list[bytes], at: int, mask: int) -> None:
    stream = bytearray(frame_records(records))
    assert unframe_records(bytes(stream)) == records
    if stream:
        stream[at % len(stream)] ^= mask
        try:
            unframe_records(bytes(stream))
        except DecodeError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_unframe_of_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    try:
        unframe_records(data)
    except DecodeError:
        pass
