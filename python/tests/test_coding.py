"""serverless_tf.protocol's coding (schema, example, tfrecord) against TensorFlow and against the TypeScript coding (shared vectors)."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf

from serverless_tf.protocol.errors import DecodeError, SchemaError
from serverless_tf.protocol.example import decode_example, encode_example, feature_spec, parse_examples
from serverless_tf.protocol.schema import Column, Fixed, columns_from_json
from serverless_tf.protocol.tfrecord import count_frames, frame_records, unframe_records

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "test/vectors/examples.json").read_text())["vectors"]
IDS = [v["name"] for v in VECTORS]

_spec = importlib.util.spec_from_file_location("vector_generator", ROOT / "test/vectors/generate.py")
assert _spec and _spec.loader
generator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generator)


@pytest.fixture(scope="module")
def ts_output() -> dict[str, Any]:
    """What the TypeScript coding makes of every vector (one node process for the whole module)."""
    out = subprocess.run(["node", "--import", "tsx", "test/vectors/encode-vectors.ts"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def same_value(a: Any, b: Any, dtype: str) -> bool:
    """Equality that tells -0.0 from 0.0 and counts NaN equal to NaN (bit-exact for floats)."""
    if dtype == "FLOAT32":
        return struct.pack("<f", a) == struct.pack("<f", b)
    if dtype == "FLOAT64":
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def assert_row_equal(actual: dict[str, Any], expected: dict[str, Any], columns: list[Column]) -> None:
    for c in columns:
        a, e = actual[c.name], expected[c.name]
        if isinstance(e, list):
            assert len(a) == len(e), c.name
            assert all(same_value(x, y, c.dtype) for x, y in zip(a, e)), (c.name, a, e)
        else:
            assert same_value(a, e, c.dtype), (c.name, a, e)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_tensorflow_still_writes_the_committed_bytes(vector: dict[str, Any]) -> None:
    assert generator.tf_encode(vector["columns"], vector["row"]).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_encode_example_writes_the_committed_bytes(vector: dict[str, Any]) -> None:
    columns = columns_from_json(vector["columns"])
    assert encode_example(generator.logical_row(vector["columns"], vector["row"]), columns).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_decode_example_reads_the_committed_bytes_as_the_logical_row(vector: dict[str, Any]) -> None:
    columns = columns_from_json(vector["columns"])
    decoded = decode_example(bytes.fromhex(vector["hex"]), columns)
    assert_row_equal(decoded, generator.logical_row(vector["columns"], vector["row"]), columns)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_typescript_encoder_bytes_parse_in_tensorflow_to_the_logical_row(vector: dict[str, Any], ts_output: dict[str, Any]) -> None:
    # Arrange
    columns = columns_from_json(vector["columns"])
    ts_bytes = bytes.fromhex(ts_output["examples"][vector["name"]])
    # Act
    parsed = parse_examples(tf.constant([ts_bytes]), columns)
    # Assert
    expected = generator.logical_row(vector["columns"], vector["row"])
    for c in columns:
        t = parsed[c.name]
        value = t[0].numpy()
        value = value.tolist() if hasattr(value, "tolist") else value  # a scalar string comes back as bytes
        if c.dtype == "STRING":
            value = [v.decode("utf-8") for v in value] if isinstance(value, list) else value.decode("utf-8")
        assert_row_equal({c.name: value}, {c.name: expected[c.name]}, [c])


def test_typescript_tfrecord_stream_reads_in_tfrecorddataset(ts_output: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "vectors.tfrecord"
    path.write_bytes(bytes.fromhex(ts_output["tfrecord"]))
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert [r.hex() for r in records] == [ts_output["examples"][name] for name in IDS]
    assert unframe_records(path.read_bytes()) == records


def test_frame_records_matches_tfrecordwriter(tmp_path: Path) -> None:
    path = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in (b"", b"abc", bytes(300)):
            w.write(r)
    assert frame_records([b"", b"abc", bytes(300)]) == path.read_bytes()


def test_feature_spec_and_parse_examples_apply_casts_bitcasts_and_ragged() -> None:
    # Arrange
    columns = [Column("i", "INT32"), Column("d", "FLOAT64", Fixed(2)), Column("v", "INT64", "var")]
    batch = tf.constant([encode_example({"i": -3, "d": [0.1, -0.0], "v": [1, 2, 3]}, columns), encode_example({"i": 4, "d": [1e300, 2.0], "v": []}, columns)])
    # Act
    parsed = parse_examples(batch, columns)
    # Assert
    assert parsed["i"].dtype == tf.int32 and parsed["i"].numpy().tolist() == [-3, 4]
    assert parsed["d"].dtype == tf.float64 and parsed["d"].numpy().tolist()[1] == [1e300, 2.0]
    assert math.copysign(1.0, parsed["d"].numpy()[0][1]) == -1.0
    assert isinstance(parsed["v"], tf.RaggedTensor) and parsed["v"].to_list() == [[1, 2, 3], []]
    assert set(feature_spec(columns)) == {"i", "d", "v"}


def test_columns_from_json_names_the_offending_field() -> None:
    with pytest.raises(SchemaError, match=r'column "x": expected field dtype: one of FLOAT32.*Received: \'FLOAT\''):
        columns_from_json([{"name": "x", "dtype": "FLOAT", "shape": "scalar"}])
    with pytest.raises(SchemaError, match="shape"):
        columns_from_json([{"name": "x", "dtype": "INT64", "shape": {"fixed": -1}}])
    assert columns_from_json([{"name": "p", "dtype": "FLOAT32", "shape": {"fixed": 4}}])[0].shape == Fixed(4)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (Column("x", "INT32"), 2**31, "INT32"),
        (Column("x", "INT64"), 2**63, "INT64"),
        (Column("x", "FLOAT32"), 1e39, "float32 range"),
        (Column("x", "FLOAT32"), "1.5", "float"),
        (Column("x", "STRING"), b"bytes", "str"),
        (Column("x", "BYTES"), "text", "bytes"),
        (Column("x", "INT64", Fixed(2)), [1], "exactly 2"),
        (Column("x", "INT64"), [], "one INT64"),
        (Column("x", "STRING"), "a\ud800", "surrogates"),
    ],
)
def test_encode_example_refuses_values_that_do_not_fit(column: Column, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        encode_example({"x": value}, [column], row_index=5)
    assert info.value.column == "x" and info.value.row_index == 5


def test_encode_example_names_a_missing_column_and_ignores_extra_ones() -> None:
    with pytest.raises(SchemaError, match='column "label" of row 2'):
        encode_example({"other": 1}, [Column("label", "INT64")], row_index=2)
    assert encode_example({"a": 1, "extra": "x"}, [Column("a", "INT64")]) == encode_example({"a": 1}, [Column("a", "INT64")])


def test_encode_example_takes_numpy_and_tensor_outputs() -> None:
    columns = [Column("digit", "INT64"), Column("scores", "FLOAT32", Fixed(3))]
    from_tensors = encode_example({"digit": tf.constant(7, tf.int64), "scores": tf.constant([0.1, 0.2, 0.7])}, columns)
    assert decode_example(from_tensors, columns) == decode_example(encode_example({"digit": 7, "scores": [0.1, 0.2, 0.7]}, columns), columns)


def test_decode_example_rejects_invalid_utf8_in_a_string() -> None:
    data = encode_example({"s": b"\xff\xfe"}, [Column("s", "BYTES")])
    with pytest.raises(DecodeError) as info:
        decode_example(data, [Column("s", "STRING")])
    assert info.value.column == "s"


def test_decode_example_rejects_oversized_and_corrupt_input() -> None:
    with pytest.raises(DecodeError, match="max_example_bytes"):
        decode_example(bytes(2000), [Column("s", "STRING")], max_example_bytes=1000)
    with pytest.raises(DecodeError):
        decode_example(b"\x0a\x05\x01", [Column("s", "STRING")])


def test_count_frames_checks_the_framing_and_tensorflow_checks_the_data_it_leaves(tmp_path: Path) -> None:
    # Arrange
    stream = bytearray(frame_records([b"hello", b"", b"world"]))
    # Act / Assert: the framing
    assert count_frames(bytes(stream)) == 3
    with pytest.raises(DecodeError, match="truncated"):
        count_frames(bytes(stream[:-1]))
    broken_length = bytearray(stream)
    broken_length[0] ^= 0x01
    with pytest.raises(DecodeError, match="length CRC") as info:
        count_frames(bytes(broken_length))
    assert info.value.offset == 0
    # The data CRC count_frames skips: a spool holding a corrupt record fails where TensorFlow reads it.
    stream[12] ^= 0xFF
    assert count_frames(bytes(stream)) == 3
    path = tmp_path / "spool.tfrecord"
    path.write_bytes(bytes(stream))
    with pytest.raises(tf.errors.DataLossError, match="corrupted record"):
        list(tf.data.TFRecordDataset(str(path)))


def test_unframe_records_rejects_corruption_and_truncation() -> None:
    stream = bytearray(frame_records([b"hello", b"world"]))
    with pytest.raises(DecodeError, match="truncated"):
        unframe_records(bytes(stream[:-1]))
    stream[12] ^= 0xFF
    with pytest.raises(DecodeError, match="data CRC") as info:
        unframe_records(bytes(stream))
    assert info.value.offset == 12
