"""The framing of a compressed song: what it is, at which rate, how long, and a checksum of the
coded payload, so a foreign, truncated or damaged file is refused before anything is decoded.

    b"AER\\0" | version (u8) | codec name (u8 length, ASCII) | sample rate (u32) | samples (u64)
    | CRC-32 of the payload (u32) | payload
"""

import struct
import zlib

from aerecon.utils.errors import DataError

MAGIC = b"AER\0"
VERSION = 1
FIXED = struct.Struct("<IQI")  # sample rate, samples, CRC-32


def pack(codec: str, sample_rate: int, samples: int, payload: bytes) -> bytes:
    name = codec.encode("ascii")
    head = MAGIC + bytes([VERSION, len(name)]) + name
    return head + FIXED.pack(sample_rate, samples, zlib.crc32(payload)) + payload


def unpack(data: bytes, what: str) -> tuple[str, int, int, bytes]:
    """(codec name, sample rate, samples, payload) of a packed song; DataError naming `what` if it
    is not one, or not whole."""
    if data[: len(MAGIC)] != MAGIC:
        raise DataError(f"{what} is not an aerecon compressed file (it does not start with {MAGIC!r})")
    if len(data) < len(MAGIC) + 2:
        raise DataError(f"{what} is truncated: it ends inside its header")
    version, length = data[len(MAGIC)], data[len(MAGIC) + 1]
    if version != VERSION:
        raise DataError(f"{what} was written in format version {version}; this aerecon reads version {VERSION}")
    start = len(MAGIC) + 2 + length
    if len(data) < start + FIXED.size:
        raise DataError(f"{what} is truncated: it ends inside its header")
    codec = data[len(MAGIC) + 2 : start].decode("ascii", "replace")
    sample_rate, samples, crc = FIXED.unpack_from(data, start)
    payload = data[start + FIXED.size :]
    if zlib.crc32(payload) != crc:
        raise DataError(f"{what} is truncated or damaged: its content does not match the checksum it was written with")
    return codec, sample_rate, samples, payload
