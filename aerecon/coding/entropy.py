"""Entropy coding of integer symbols with constriction's range coder, under models made of integer
counts.

A model is each symbol's count (a histogram over a contiguous range), written into the stream
before the symbols it codes. Probabilities are counts divided by their total, an exactly rounded
IEEE division, and constriction turns them into its fixed-point distribution deterministically: a
decoder on any machine rebuilds the same model from the same counts and decodes the same symbols.
"""

from dataclasses import dataclass

import constriction
import numpy as np

from aerecon.utils.errors import DataError

MAX_ALPHABET = 1 << 16  # symbols a histogram may span: larger ranges are refused, not coded slowly


@dataclass(frozen=True)
class Histogram:
    """Counts of the integers `low`, `low + 1`, ... in the symbols a model codes."""

    low: int
    counts: np.ndarray  # int64

    @classmethod
    def of(cls, symbols: np.ndarray) -> "Histogram":
        """The histogram of `symbols` over their range (a value that does not occur counts 0)."""
        low, high = int(symbols.min()), int(symbols.max())
        if high - low + 1 > MAX_ALPHABET:
            raise ValueError(f"symbols span {high - low + 1} values, more than {MAX_ALPHABET}")
        return cls(low, np.bincount(symbols - low, minlength=high - low + 1).astype(np.int64))

    @property
    def certain(self) -> bool:
        """Only one value occurs: the symbols cost no bits, and are not coded."""
        return np.count_nonzero(self.counts) <= 1

    def bits(self) -> float:
        """What coding the symbols it was counted from takes, ideally: their information content."""
        seen = self.counts[self.counts > 0]
        return float(-(seen * np.log2(seen / seen.sum())).sum())

    def model(self):
        return constriction.stream.model.Categorical(self.counts / self.counts.sum(), perfect=False)


def write_varint(out: bytearray, value: int) -> None:
    """An unsigned integer, 7 bits a byte (LEB128)."""
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return


def zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


class Reader:
    """Reads what the writers here wrote, refusing a stream that ends early."""

    def __init__(self, data: bytes, what: str):
        self.data, self.at, self.what = memoryview(data), 0, what

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise DataError(f"{self.what} is truncated or damaged: it ends early")
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += size
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise DataError(f"{self.what} is damaged: a number in it runs on")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.at)


def write_histogram(out: bytearray, histogram: Histogram) -> None:
    write_varint(out, zigzag(histogram.low))
    write_varint(out, len(histogram.counts))
    for count in histogram.counts:
        write_varint(out, int(count))


def read_histogram(reader: Reader) -> Histogram:
    low, size = unzigzag(reader.varint()), reader.varint()
    if not 0 < size <= MAX_ALPHABET:
        raise DataError(f"{reader.what} is damaged: a model of {size} symbols")
    counts = np.array([reader.varint() for _ in range(size)], dtype=np.int64)
    if not counts.any():
        raise DataError(f"{reader.what} is damaged: a model that counts no symbol")
    return Histogram(low, counts)


def header(groups: list[np.ndarray]) -> tuple[bytearray, list[Histogram]]:
    """What `encode` writes before the coded symbols (the groups' sizes and histograms), and the histograms."""
    out = bytearray()
    histograms = [Histogram.of(group) if len(group) else Histogram(0, np.ones(1, np.int64)) for group in groups]
    write_varint(out, len(groups))
    for group, histogram in zip(groups, histograms):
        write_varint(out, len(group))
        write_histogram(out, histogram)
    return out, histograms


def encode(groups: list[np.ndarray]) -> bytes:
    """Each group of integer symbols under its own histogram: the histograms, then the range-coded
    symbols, group after group."""
    out, histograms = header(groups)
    coder = constriction.stream.queue.RangeEncoder()
    for group, histogram in zip(groups, histograms):
        if len(group) and not histogram.certain:
            coder.encode((group - histogram.low).astype(np.int32), histogram.model())
    return bytes(out) + coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, what: str) -> list[np.ndarray]:
    """The groups `encode` wrote into `data` (`what` names it in errors)."""
    reader = Reader(data, what)
    count = reader.varint()
    layout = [(reader.varint(), read_histogram(reader)) for _ in range(count)]
    words = reader.rest()
    if len(words) % 4:
        raise DataError(f"{what} is truncated or damaged: its coded part is not whole 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
    groups = []
    for size, histogram in layout:
        if histogram.certain:
            symbols = np.full(size, int(np.argmax(histogram.counts)), dtype=np.int64)
        else:
            if histogram.counts.sum() != size:
                raise DataError(f"{what} is damaged: a model counts {histogram.counts.sum()} symbols, not {size}")
            symbols = decoder.decode(histogram.model(), size).astype(np.int64)
        groups.append(symbols + histogram.low)
    return groups


def coded_bits(groups: list[np.ndarray]) -> float:
    """About what `encode` writes for the groups, in bits: their histograms exactly, the symbols at
    their information content (the range coder adds at most a few words)."""
    out, histograms = header(groups)
    return 8 * len(out) + sum(0.0 if histogram.certain else histogram.bits() for histogram in histograms)
