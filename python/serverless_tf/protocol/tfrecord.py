"""TFRecord framing (as src/codec/tfrecord.ts): what feed, spool and output messages carry.

Each record is ``uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of the data``
(little-endian); ``tf.data.TFRecordDataset`` reads the stream unchanged.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Iterable, Iterator

from .crc32c import masked_crc32c
from .errors import DecodeError

#: The largest record (one serialized example) a decoder accepts unless told otherwise.
DEFAULT_MAX_EXAMPLE_BYTES = 4 * 1024 * 1024
#: Bytes a frame adds to its record: 8-byte length, 4-byte length CRC, 4-byte data CRC.
FRAME_OVERHEAD = 16


@lru_cache(maxsize=4096)
def _length_crc(length: int) -> int:
    """The masked CRC of a frame's length field. The examples of one feed have few distinct
    lengths, so the pure-Python CRC runs once per length instead of once per frame."""
    return masked_crc32c(struct.pack("<Q", length))


def frame_records(records: Iterable[bytes]) -> bytes:
    """Frames records as a TFRecord stream (``tf.data.TFRecordDataset`` reads it unchanged).

    Example:
        >>> unframe_records(frame_records([b"a", b""]))
        [b'a', b'']
    """
    parts: list[bytes] = []
    for r in records:
        parts += [struct.pack("<QI", len(r), _length_crc(len(r))), bytes(r), struct.pack("<I", masked_crc32c(r))]
    return b"".join(parts)


def unframe_records(data: bytes, max_record_bytes: int = DEFAULT_MAX_EXAMPLE_BYTES) -> list[bytes]:
    """Splits a TFRecord stream into its records, verifying both CRCs of every frame.

    Raises:
        DecodeError: on truncation, a CRC mismatch or a record larger than ``max_record_bytes``.

    Example:
        >>> unframe_records(frame_records([b"x"]))
        [b'x']
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(0, f"expected bytes, received {type(data).__name__}")
    view = memoryview(bytes(data))
    out: list[bytes] = []
    for start, length in _frames(view, max_record_bytes):
        record = bytes(view[start : start + length])
        (data_crc,) = struct.unpack_from("<I", view, start + length)
        if data_crc != masked_crc32c(record):
            raise DecodeError(start, "data CRC mismatch (corrupt record)")
        out.append(record)
    return out


def _frames(view: memoryview, max_record_bytes: int) -> Iterator[tuple[int, int]]:
    """Each frame's data offset and length, checking the framing and each length's CRC."""
    p = 0
    while p < len(view):
        if len(view) - p < 12:
            raise DecodeError(p, f"truncated frame header ({len(view) - p} bytes left, 12 needed)")
        length, length_crc = struct.unpack_from("<QI", view, p)
        if length_crc != _length_crc(length):
            raise DecodeError(p, "length CRC mismatch (corrupt frame)")
        if length > max_record_bytes:
            raise DecodeError(p, f"record length {length} exceeds max_record_bytes ({max_record_bytes})")
        start = p + 12
        if len(view) - start < length + 4:
            raise DecodeError(p, f"truncated record: {length} data bytes + 4 CRC bytes declared, {len(view) - start} left")
        yield start, length
        p = start + length + 4


def count_frames(data: bytes, max_record_bytes: int = DEFAULT_MAX_EXAMPLE_BYTES) -> int:
    """The number of frames of a TFRecord stream, checking its framing and each length's CRC.

    Unlike :func:`unframe_records` it leaves the data CRCs to ``tf.data.TFRecordDataset``, which
    checks every one as it reads the spool: in pure Python they cost about 0.2 s per MB, most of
    a worker's spooling time (bench/feed.ts). (google-crc32c's C extension was measured, and dropped:
    loaded beside TensorFlow, it left a parameter-server chief blocked in ``remove_function`` past
    its lease at the end of ``fit``.)

    Raises:
        DecodeError: on truncation, a length CRC mismatch or a record larger than ``max_record_bytes``.

    Example:
        >>> count_frames(frame_records([b"x", b"yz"]))
        2
    """
    return sum(1 for _ in _frames(memoryview(data), max_record_bytes))
