"""tf.Example coding from a column schema: the Python half of ``src/codec/example.ts`` (see docs/protocol.md).

Both halves produce the same bytes as TensorFlow's ``Example.SerializeToString(deterministic=True)``;
the shared vectors in ``test/vectors/examples.json`` prove it from both sides.

Mapping of dtypes to tf.Example lists:

- FLOAT32 -> float_list. NaN, ±Infinity and -0.0 are kept bit-exact, as TensorFlow does.
- FLOAT64 -> int64_list holding the IEEE-754 bit pattern: tf.Example has only 32-bit floats, so a float64
  stored there would lose precision; :func:`parse_examples` bitcasts back.
- INT32 -> int64_list (range checked; cast back to int32 by :func:`parse_examples`).
- INT64 -> int64_list.
- STRING (UTF-8) and BYTES -> bytes_list.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Mapping, Sequence

import tensorflow as tf

from .errors import DecodeError, SchemaError
from .schema import Column, Fixed
from .tfrecord import DEFAULT_MAX_EXAMPLE_BYTES

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

_WIRE_DTYPE = {"FLOAT32": tf.float32, "FLOAT64": tf.int64, "INT32": tf.int64, "INT64": tf.int64, "STRING": tf.string, "BYTES": tf.string}


def feature_spec(columns: Iterable[Column]) -> dict[str, Any]:
    """The ``tf.io.parse_example`` features dict for ``columns`` (wire dtypes; see :func:`parse_examples`).

    Example:
        >>> spec = feature_spec([Column("label", "INT64")])
    """
    spec: dict[str, Any] = {}
    for c in columns:
        dtype = _WIRE_DTYPE[c.dtype]
        if c.shape == "scalar":
            spec[c.name] = tf.io.FixedLenFeature([], dtype)
        elif c.shape == "var":
            spec[c.name] = tf.io.RaggedFeature(dtype, row_splits_dtype=tf.int64)
        else:
            spec[c.name] = tf.io.FixedLenFeature([c.shape.fixed], dtype)
    return spec


def parse_examples(serialized: tf.Tensor, columns: Iterable[Column]) -> dict[str, Any]:
    """Parses a batch (1-D string tensor) of serialized examples into tensors of the columns' dtypes.

    INT32 columns are cast to ``tf.int32``; FLOAT64 columns are bitcast from their int64 bit patterns to
    ``tf.float64``; ``var`` columns become ``tf.RaggedTensor``; STRING and BYTES stay ``tf.string``.

    Example:
        >>> batch = tf.constant([encode_example({"label": 7}, [Column("label", "INT64")])])
        >>> parse_examples(batch, [Column("label", "INT64")])["label"].numpy().tolist()
        [7]
    """
    columns = list(columns)
    if not columns:  # tf.io.parse_example refuses an empty features dict
        return {}
    parsed = tf.io.parse_example(serialized, feature_spec(columns))
    out: dict[str, Any] = {}
    for c in columns:
        t = parsed[c.name]
        if c.dtype == "INT32":
            t = tf.cast(t, tf.int32)
        elif c.dtype == "FLOAT64":
            t = t.with_flat_values(tf.bitcast(t.flat_values, tf.float64)) if isinstance(t, tf.RaggedTensor) else tf.bitcast(t, tf.float64)
        out[c.name] = t
    return out


def parse_rows(columns: Sequence[Column]) -> Callable[[list[bytes]], dict[str, Any]]:
    """A parser of a list of serialized examples into a dict of eager tensors (:func:`parse_examples`)."""

    def parse(rows: list[bytes]) -> dict[str, Any]:
        return dict(parse_examples(tf.constant(rows, dtype=tf.string), columns))

    return parse


def _values(c: Column, raw: Any, row_index: int | None) -> list[Any]:
    if hasattr(raw, "numpy"):  # an eager tensor, as a model returns
        raw = raw.numpy()
    if hasattr(raw, "tolist") and not isinstance(raw, (bytes, bytearray)):  # numpy array or scalar
        raw = raw.tolist()
    if c.shape == "scalar":
        if isinstance(raw, (list, tuple)):
            raise SchemaError(c.name, row_index, f"one {c.dtype} value", raw, 'give a single value, or declare the shape "var" or {"fixed": n}')
        return [raw]
    if not isinstance(raw, (list, tuple)):
        raise SchemaError(c.name, row_index, f"a list of {c.dtype} values", raw, "give a list of values")
    if isinstance(c.shape, Fixed) and len(raw) != c.shape.fixed:
        raise SchemaError(c.name, row_index, f"a list of exactly {c.shape.fixed} {c.dtype} values", f"a list of {len(raw)} values", 'give exactly that many values, or declare the shape "var"')
    return list(raw)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _feature(c: Column, values: list[Any], row_index: int | None) -> tf.train.Feature:
    def bad(v: Any, hint: str) -> SchemaError:
        return SchemaError(c.name, row_index, f"{c.dtype} values", v, hint)

    if c.dtype == "FLOAT32":
        for v in values:
            if not _is_number(v):
                raise bad(v, "give a float")
            try:
                struct.pack("<f", v)  # raises when a finite value overflows float32, as Math.fround would go to Infinity
            except OverflowError:
                raise bad(v, "scale the value into float32 range or declare the column FLOAT64") from None
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if c.dtype == "FLOAT64":
        for v in values:
            if not _is_number(v):
                raise bad(v, "give a float")
        bits = [struct.unpack("<q", struct.pack("<d", float(v)))[0] for v in values]
        return tf.train.Feature(int64_list=tf.train.Int64List(value=bits))
    if c.dtype in ("INT32", "INT64"):
        lo, hi = _INT32 if c.dtype == "INT32" else _INT64
        for v in values:
            if not _is_int(v) or not lo <= v <= hi:
                raise bad(v, f"give an integer in [{lo}, {hi}]")
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if c.dtype == "STRING":
        encoded = []
        for v in values:
            if not isinstance(v, str):
                raise bad(v, "give a str (use a BYTES column for binary data)")
            try:
                encoded.append(v.encode("utf-8"))
            except UnicodeEncodeError:
                raise bad(v, "remove unpaired surrogates from the string") from None
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
    for v in values:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise bad(v, "give bytes (use a STRING column for text)")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(v) for v in values]))


def encode_example(row: Mapping[str, Any], columns: Iterable[Column], row_index: int | None = None) -> bytes:
    """Encodes one row as serialized tf.Example bytes, identical to the TypeScript encoder's.

    Keys of ``row`` not in ``columns`` are ignored. Values may be Python scalars/lists, numpy values or
    eager tensors.

    Raises:
        SchemaError: a column is missing, or a value has the wrong type, range or list length.

    Example:
        >>> encode_example({"label": 7, "extra": "ignored"}, [Column("label", "INT64")]).hex()
        '0a100a0e0a056c6162656c12051a030a0107'
    """
    example = tf.train.Example()
    example.features.SetInParent()  # an example with no columns still writes an empty Features, as the TS side does
    for c in columns:
        if c.name not in row:
            raise SchemaError(c.name, row_index, f"a {c.dtype} value", None, f'add the column "{c.name}" to the row, or remove it from the columns')
        example.features.feature[c.name].CopyFrom(_feature(c, _values(c, row[c.name], row_index), row_index))
    return example.SerializeToString(deterministic=True)


def _decode_value(c: Column, feature: Any, row_index: int | None) -> list[Any]:
    wanted = {"FLOAT32": "float_list", "STRING": "bytes_list", "BYTES": "bytes_list"}.get(c.dtype, "int64_list")
    kind = feature.WhichOneof("kind")
    if kind is not None and kind != wanted:
        raise SchemaError(c.name, row_index, f"{c.dtype} values stored as {wanted}", f"a {kind}", "make the producer and this decoder use the same dtype")
    if kind is None:
        return []
    values = list(getattr(feature, kind).value)
    if c.dtype == "FLOAT64":
        return [struct.unpack("<d", struct.pack("<q", v))[0] for v in values]
    if c.dtype == "INT32":
        for v in values:
            if not _INT32[0] <= v <= _INT32[1]:
                raise SchemaError(c.name, row_index, "INT32 values", v, "declare the column INT64")
    if c.dtype == "STRING":
        out = []
        for v in values:
            try:
                out.append(v.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise DecodeError(e.start, "STRING value is not valid UTF-8 (declare the column BYTES for binary data)", c.name) from None
        return out
    return values


def decode_example(data: bytes, columns: Iterable[Column], row_index: int | None = None, max_example_bytes: int = DEFAULT_MAX_EXAMPLE_BYTES) -> dict[str, Any]:
    """Decodes serialized tf.Example bytes into a row of Python values (``scalar`` -> value, else list).

    Raises:
        DecodeError: the bytes are not a tf.Example, are larger than ``max_example_bytes``, or hold invalid UTF-8 in a STRING.
        SchemaError: a column is missing or its values do not fit the column.

    Example:
        >>> decode_example(bytes.fromhex("0a100a0e0a056c6162656c12051a030a0107"), [Column("label", "INT64")])
        {'label': 7}
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(0, f"expected bytes, received {type(data).__name__}")
    if len(data) > max_example_bytes:
        raise DecodeError(0, f"example of {len(data)} bytes exceeds max_example_bytes ({max_example_bytes})")
    try:
        example = tf.train.Example.FromString(bytes(data))
    except Exception as e:  # the protobuf runtime raises its own DecodeError (or others on hostile input)
        raise DecodeError(0, f"not a tf.Example ({e})") from e
    features = example.features.feature
    row: dict[str, Any] = {}
    for c in columns:
        if c.name not in features:
            raise SchemaError(c.name, row_index, f"a {c.dtype} feature", None, "make the producer write this feature, or remove the column")
        values = _decode_value(c, features[c.name], row_index)
        if c.shape == "scalar":
            if len(values) != 1:
                raise SchemaError(c.name, row_index, f"one {c.dtype} value", f"a list of {len(values)} values", "make the producer write the declared shape")
            row[c.name] = values[0]
        else:
            if isinstance(c.shape, Fixed) and len(values) != c.shape.fixed:
                raise SchemaError(c.name, row_index, f"{c.shape.fixed} {c.dtype} values", f"a list of {len(values)} values", "make the producer write the declared shape")
            row[c.name] = values
    return row


_ZERO = {"FLOAT32": 0.0, "FLOAT64": 0.0, "INT32": 0, "INT64": 0, "STRING": "", "BYTES": b""}


def zero_example(columns: Iterable[Column]) -> bytes:
    """A serialized example with every column at zero (empty for ``var``): the padding rows of a batch."""
    columns = list(columns)
    row: dict[str, Any] = {}
    for c in columns:
        z = _ZERO[c.dtype]
        row[c.name] = z if c.shape == "scalar" else [z] * c.shape.fixed if isinstance(c.shape, Fixed) else []
    return encode_example(row, columns)
