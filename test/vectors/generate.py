"""Writes test/vectors/examples.json: tf.Example vectors whose expected bytes come from TensorFlow itself.

Each vector holds the schema columns, a logical row in a JSON-safe form and the hex of
``tf.train.Example.SerializeToString(deterministic=True)``. JSON-safe values: FLOAT32/FLOAT64 as numbers
or the strings "NaN", "Infinity", "-Infinity", "-0"; INT32 as numbers; INT64 as decimal strings;
STRING as strings; BYTES as base64.

The encoder here builds the protos with TensorFlow's own classes and shares no code with
``serverless_tf.protocol.example``, so the vectors check that module rather than echo it.

Run: ``.venv/bin/python test/vectors/generate.py`` from the repository root.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import tensorflow as tf

OUT = Path(__file__).with_name("examples.json")
SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"), "-0": -0.0}


def float_of(v: Any) -> float:
    """A JSON-safe float (number or special string) as a Python float."""
    return SPECIAL[v] if isinstance(v, str) else float(v)


def python_value(dtype: str, v: Any) -> Any:
    """A JSON-safe value as the Python value the worker would see."""
    if dtype in ("FLOAT32", "FLOAT64"):
        return float_of(v)
    if dtype == "INT64":
        return int(v)
    if dtype == "BYTES":
        return base64.b64decode(v)
    return v


def logical_row(columns: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """The vector's row with Python values (scalars stay scalars, lists stay lists)."""
    out = {}
    for c in columns:
        v = row[c["name"]]
        out[c["name"]] = [python_value(c["dtype"], x) for x in v] if isinstance(v, list) else python_value(c["dtype"], v)
    return out


def tf_feature(dtype: str, values: list[Any]) -> tf.train.Feature:
    """One column as a tf.train.Feature, with the documented dtype mapping."""
    if dtype == "FLOAT32":
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float_of(v) for v in values]))
    if dtype == "FLOAT64":
        bits = [struct.unpack("<q", struct.pack("<d", float_of(v)))[0] for v in values]
        return tf.train.Feature(int64_list=tf.train.Int64List(value=bits))
    if dtype in ("INT32", "INT64"):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if dtype == "STRING":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[base64.b64decode(v) for v in values]))


def tf_encode(columns: list[dict[str, Any]], row: dict[str, Any]) -> bytes:
    """TensorFlow's deterministic serialization of the vector's row."""
    example = tf.train.Example()
    example.features.SetInParent()
    for c in columns:
        v = row[c["name"]]
        example.features.feature[c["name"]].CopyFrom(tf_feature(c["dtype"], v if isinstance(v, list) else [v]))
    return example.SerializeToString(deterministic=True)


def col(name: str, dtype: str, shape: Any = "scalar") -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape}


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def f32(x: float) -> float:
    """Round to float32 so the logical row is exactly what decoding returns."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def vectors() -> list[dict[str, Any]]:
    """The vector definitions (columns + logical row), without bytes."""
    v: list[dict[str, Any]] = []

    def add(name: str, columns: list[dict[str, Any]], row: dict[str, Any]) -> None:
        v.append({"name": name, "columns": columns, "row": row})

    add("every dtype, scalar", [col("f32", "FLOAT32"), col("f64", "FLOAT64"), col("i32", "INT32"), col("i64", "INT64"), col("s", "STRING"), col("b", "BYTES")],
        {"f32": 1.5, "f64": 0.1, "i32": -7, "i64": "9007199254740993", "s": "héllo", "b": b64(b"\x00\xff\x10")})
    add("every dtype, var", [col("f32", "FLOAT32", "var"), col("f64", "FLOAT64", "var"), col("i32", "INT32", "var"), col("i64", "INT64", "var"), col("s", "STRING", "var"), col("b", "BYTES", "var")],
        {"f32": [f32(0.1), -2.25, 3.0], "f64": [0.1, -1e300], "i32": [0, 1, -1, 300], "i64": ["-5", "123456789012345678"], "s": ["a", "", "bc"], "b": [b64(b"x"), b64(b""), b64(bytes(range(256)))]})
    add("every dtype, fixed", [col("f32", "FLOAT32", {"fixed": 2}), col("f64", "FLOAT64", {"fixed": 1}), col("i32", "INT32", {"fixed": 3}), col("i64", "INT64", {"fixed": 2}), col("s", "STRING", {"fixed": 2}), col("b", "BYTES", {"fixed": 1})],
        {"f32": [0.5, -0.5], "f64": [2.5], "i32": [1, 2, 3], "i64": ["1", "-1"], "s": ["x", "y"], "b": [b64(b"\x01\x02")]})
    add("float32 special values kept bit-exact (-0, NaN, ±Infinity, max, min subnormal)", [col("x", "FLOAT32", "var")],
        {"x": ["-0", "NaN", "Infinity", "-Infinity", f32(3.4028234663852886e38), f32(1.401298464324817e-45), f32(-1.1754943508222875e-38), 0]})
    add("float64 special values as bit patterns", [col("x", "FLOAT64", "var")],
        {"x": ["-0", "NaN", "Infinity", "-Infinity", 1.7976931348623157e308, 5e-324, 0.1, 0]})
    add("float32 scalar -0 and float64 scalar NaN", [col("z", "FLOAT32"), col("n", "FLOAT64")], {"z": "-0", "n": "NaN"})
    add("int64 extremes and 2^53+1", [col("x", "INT64", "var")],
        {"x": ["-9223372036854775808", "9223372036854775807", "0", "-1", "9007199254740993", "-9007199254740993", "4294967296"]})
    add("int32 extremes", [col("x", "INT32", "var")], {"x": [-2147483648, 2147483647, 0]})
    add("empty var lists of every dtype", [col(d.lower(), d, "var") for d in ("FLOAT32", "FLOAT64", "INT32", "INT64", "STRING", "BYTES")],
        {d.lower(): [] for d in ("FLOAT32", "FLOAT64", "INT32", "INT64", "STRING", "BYTES")})
    add("fixed length zero", [col("none", "FLOAT32", {"fixed": 0}), col("none64", "INT64", {"fixed": 0})], {"none": [], "none64": []})
    add("empty string and empty bytes", [col("s", "STRING"), col("b", "BYTES")], {"s": "", "b": ""})
    add("string with NUL bytes", [col("s", "STRING")], {"s": "a\u0000b\u0000"})
    add("non-ASCII UTF-8 strings", [col("s", "STRING", "var")], {"s": ["日本語", "é", "😀", "\u00a0\u2028", "Ωmega"]})
    # upb writes "ab" before "a" (longer first when one key is a prefix of the other): "a"/"aa"/"a_b", "m"/"mid", "z"/"zz", "_"/"__mask" exercise that.
    many = ["f29", "a", "B", "_", "aa", "a_b", "Z", "z", "0", "9lives", "é", "ab", "a0", "f01", "f10", "f02", "label", "pixels", "__row_id", "__mask",
            "x", "y", "w", "Aa", "aA", "mid", "m", "zz", "zy", "k"]
    add("many features exercise key sorting", [col(n, "INT64") for n in many], {n: str(i) for i, n in enumerate(many)})
    # U+FF61 sorts after U+1F600 in UTF-16 (0xFF61 > 0xD83D) but before it in UTF-8 (0xEF < 0xF0).
    add("keys whose UTF-8 order differs from UTF-16 order", [col("\U0001F600", "INT64"), col("\uff61", "INT64"), col("z", "INT64"), col("é", "INT64")],
        {"\U0001F600": "1", "\uff61": "2", "z": "3", "é": "4"})
    add("no columns", [], {})
    add("digits row: 64 FLOAT32 pixels + INT64 label + row id", [col("pixels", "FLOAT32", {"fixed": 64}), col("label", "INT64"), col("__row_id", "INT64")],
        {"pixels": [float((i * 7) % 17) for i in range(64)], "label": "7", "__row_id": "123"})
    add("long list exercises multi-byte lengths", [col("x", "FLOAT32", "var"), col("y", "INT64", "var")],
        {"x": [float(i) for i in range(100)], "y": [str(i * 1000) for i in range(50)]})
    return v


def main() -> None:
    out = [{**v, "hex": tf_encode(v["columns"], v["row"]).hex()} for v in vectors()]
    OUT.write_text(json.dumps({"generator": "test/vectors/generate.py", "tensorflow": tf.__version__, "vectors": out}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} vectors to {OUT}")


if __name__ == "__main__":
    main()
