"""CRC32C (Castagnoli) and TFRecord's masked CRC.

google-crc32c computes it in C (a hardware instruction where the CPU has one): every feed message
a worker spools and every request the script-mode engine serves is verified frame by frame, and a
pure-Python loop at about 5 MB/s was most of a worker's spooling time (bench/feed.ts).
"""

from __future__ import annotations

import google_crc32c


def crc32c(data: bytes | memoryview) -> int:
    """CRC32C of ``data``.

    Example:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    return google_crc32c.value(bytes(data))


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (tensorflow/core/lib/hash/crc32c.h)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
