"""Reference codecs a learned code is measured against, each making real compressed bytes from a
mono song and back, so that its rate is counted from what it writes, never estimated.

- `pcm8`, `mulaw8`: 8 bits a sample, linear or mu-law (torchaudio), scaled to the song's peak.
- `dct`: a textbook transform coder: orthonormal DCT-II blocks, one uniform quantiser step for
  every coefficient, each group of frequencies entropy-coded under its own counted histogram
  (constriction's range coder); the step is searched for the asked rate.
- `opus`, `mp3`, `aac`: FFmpeg's encoders through PyAV, fed the song resampled to the lowest rate
  each takes (8 kHz) and decoded back to the song's rate; the rate counts their coded packets.

    codec = reference_codec("dct", kbps=8)
    data = codec.encode(wave, 4410)          # bytes: aerecon.coding.container framing
    wave = codec.decode(data)                # the song at its rate, as long as it was
"""

import math
import struct
from dataclasses import dataclass

import av
import numpy as np
import scipy.fft
import torch
import torchaudio.functional as AF

from aerecon.coding import container, entropy
from aerecon.utils.errors import ConfigError, DataError

CODECS = ("pcm8", "mulaw8", "dct", "opus", "mp3", "aac")
FFMPEG = {"opus": "libopus", "mp3": "libmp3lame", "aac": "aac"}  # encoders
DECODERS = {"opus": "libopus", "mp3": "mp3float", "aac": "aac"}
FFMPEG_RATE = 8000  # the lowest input rate Opus, MP3 (MPEG-2.5) and AAC all take


def peak_of(wave: np.ndarray) -> float:
    return float(np.abs(wave).max()) or 1.0


@dataclass
class EightBit:
    """8 bits a sample, after scaling by the song's peak (stored as float32): `mu` 0 is linear PCM."""

    mu: int = 0

    @property
    def name(self) -> str:
        return "mulaw8" if self.mu else "pcm8"

    def encode(self, wave: np.ndarray, sample_rate: int) -> bytes:
        peak = peak_of(wave)
        scaled = torch.from_numpy(np.clip(wave / peak, -1.0, 1.0).astype(np.float32))
        if self.mu:
            codes = AF.mu_law_encoding(scaled, 256).numpy().astype(np.uint8)
        else:
            codes = np.clip(np.round((scaled.numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return container.pack(self.name, sample_rate, len(wave), struct.pack("<f", peak) + codes.tobytes())

    def decode(self, data: bytes, what: str = "the compressed song") -> np.ndarray:
        _, _, samples, payload = unpack(data, self.name, what)
        peak, codes = struct.unpack("<f", payload[:4])[0], np.frombuffer(payload[4:], dtype=np.uint8)
        if len(codes) != samples:
            raise DataError(f"{what} is damaged: it holds {len(codes)} samples, not {samples}")
        if self.mu:
            wave = AF.mu_law_decoding(torch.from_numpy(codes.astype(np.int64)), 256).numpy()
        else:
            wave = codes.astype(np.float32) / 127.5 - 1.0
        return (wave * peak).astype(np.float32)


@dataclass
class TransformCoder:
    """Orthonormal DCT-II blocks of `block` samples, uniformly quantised with one step, the
    quantised coefficients of each `group` adjacent frequencies coded under their own histogram.
    `kbps` sets the step: the coarsest whose coded size fits the rate."""

    kbps: float
    block: int = 256
    group: int = 8
    name: str = "dct"

    def coefficients(self, wave: np.ndarray) -> np.ndarray:
        frames = math.ceil(len(wave) / self.block)
        padded = np.zeros(frames * self.block, dtype=np.float64)
        padded[: len(wave)] = wave
        return scipy.fft.dct(padded.reshape(frames, self.block), type=2, norm="ortho", axis=1)

    def groups(self, quantised: np.ndarray) -> list[np.ndarray]:
        return [quantised[:, g : g + self.group].ravel() for g in range(0, self.block, self.group)]

    def encode(self, wave: np.ndarray, sample_rate: int) -> bytes:
        coefficients = self.coefficients(wave)
        budget = self.kbps * 1000 * len(wave) / sample_rate - 8 * (len(container.MAGIC) + 32)  # bits
        # the coded size falls as the step grows: bisect on its logarithm, then code for real; the
        # finest step keeps every group's alphabet within what a histogram may span (about 96 dB
        # below the loudest coefficient, finer than any rate asked of it needs)
        largest = float(np.abs(coefficients).max()) + 1e-12
        low, high = math.log2(2 * largest / (entropy.MAX_ALPHABET - 2)), math.log2(2 * largest)
        for _ in range(40):
            middle = (low + high) / 2
            bits = entropy.coded_bits(self.groups(np.round(coefficients / 2**middle).astype(np.int64)))
            low, high = (low, middle) if bits <= budget else (middle, high)
        step = 2**high
        quantised = np.round(coefficients / step).astype(np.int64)
        payload = struct.pack("<dHH", step, self.block, self.group) + entropy.encode(self.groups(quantised))
        return container.pack(self.name, sample_rate, len(wave), payload)

    def decode(self, data: bytes, what: str = "the compressed song") -> np.ndarray:
        _, _, samples, payload = unpack(data, self.name, what)
        if len(payload) < 12:
            raise DataError(f"{what} is truncated: it ends inside its header")
        step, block, group = struct.unpack("<dHH", payload[:12])
        if not (math.isfinite(step) and step > 0 and block > 0 and group > 0 and block % group == 0):
            raise DataError(f"{what} is damaged: step {step}, block {block}, group {group}")
        frames = math.ceil(samples / block)
        groups = entropy.decode(payload[12:], what)
        if len(groups) != block // group or any(len(g) != frames * group for g in groups):
            raise DataError(f"{what} is damaged: its coefficients do not fill {frames} blocks of {block}")
        quantised = np.concatenate([g.reshape(frames, group) for g in groups], axis=1)
        wave = scipy.fft.idct(quantised * step, type=2, norm="ortho", axis=1).ravel()[:samples]
        return wave.astype(np.float32)


@dataclass
class FFmpegCodec:
    """A lossy codec of FFmpeg's (libopus, libmp3lame, aac) at `kbps`, through PyAV. Its packets are
    stored with their lengths, after the encoder's delay (what Ogg Opus calls pre-skip), which is
    measured once when encoding and cut when decoding."""

    name: str
    kbps: float

    def encode(self, wave: np.ndarray, sample_rate: int) -> bytes:
        encoder = av.CodecContext.create(FFMPEG[self.name], "w")
        encoder.sample_rate, encoder.layout, encoder.format = FFMPEG_RATE, "mono", "fltp"
        encoder.bit_rate = int(self.kbps * 1000)
        encoder.open()
        resampled = AF.resample(torch.from_numpy(wave.astype(np.float32)), sample_rate, FFMPEG_RATE).numpy()
        size = encoder.frame_size or 1024
        packets = []
        for start in range(0, len(resampled) + size, size):  # one more frame: the encoder's delay
            piece = np.zeros(size, dtype=np.float32)
            chunk = resampled[start : start + size]
            piece[: len(chunk)] = chunk
            frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = FFMPEG_RATE, start
            packets += [bytes(p) for p in encoder.encode(frame)]
        packets += [bytes(p) for p in encoder.encode(None)]
        delay = delay_between(resampled, self.decode_packets(packets), most=4 * size)
        payload = bytearray()
        entropy.write_varint(payload, delay)
        for packet in packets:  # each after its length
            entropy.write_varint(payload, len(packet))
            payload += packet
        return container.pack(self.name, sample_rate, len(wave), bytes(payload))

    def decode_packets(self, packets: list[bytes]) -> np.ndarray:
        """The packets decoded, as float samples at FFMPEG_RATE (decoders choose their own format and
        rate: libopus gives 16-bit samples at 48 kHz)."""
        decoder = av.CodecContext.create(DECODERS[self.name], "r")
        decoder.sample_rate, decoder.layout = FFMPEG_RATE, "mono"
        converter = av.AudioResampler(format="flt", layout="mono", rate=FFMPEG_RATE)
        frames = [frame for p in packets for frame in decoder.decode(av.Packet(p))] + list(decoder.decode(None))
        out = [c.to_ndarray().reshape(-1) for frame in frames for c in converter.resample(frame)]
        out += [c.to_ndarray().reshape(-1) for c in converter.resample(None)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def decode(self, data: bytes, what: str = "the compressed song") -> np.ndarray:
        _, sample_rate, samples, payload = unpack(data, self.name, what)
        reader = entropy.Reader(payload, what)
        delay, packets = reader.varint(), []
        while reader.at < len(payload):
            packets.append(reader.take(reader.varint()))
        try:
            decoded = self.decode_packets(packets)[delay:]
        except av.error.FFmpegError as error:
            raise DataError(f"{what} is damaged: {self.name} cannot decode it ({error})") from None
        wave = AF.resample(torch.from_numpy(decoded), FFMPEG_RATE, sample_rate).numpy()
        out = np.zeros(samples, dtype=np.float32)
        out[: min(samples, len(wave))] = wave[:samples]
        return out


def delay_between(original: np.ndarray, decoded: np.ndarray, most: int) -> int:
    """The shift (0 to `most` samples) that best lines `decoded` up with `original`, by correlation."""
    n = len(original)
    spectrum = np.fft.rfft(decoded[:n], 2 * n) * np.conj(np.fft.rfft(original, 2 * n))
    correlation = np.fft.irfft(spectrum, 2 * n)[: most + 1]
    return int(np.argmax(correlation))


def unpack(data: bytes, codec: str, what: str) -> tuple[str, int, int, bytes]:
    name, sample_rate, samples, payload = container.unpack(data, what)
    if name != codec:
        raise DataError(f"{what} was compressed with {name}, not {codec}")
    return name, sample_rate, samples, payload


def reference_codec(name: str, kbps: float | None = None):
    """The reference codec `name` (one of CODECS); the lossy ones take their rate in kbit/s."""
    if name == "pcm8":
        return EightBit(mu=0)
    if name == "mulaw8":
        return EightBit(mu=255)
    if name not in CODECS:
        raise ConfigError(f"codec={name}: use one of {', '.join(CODECS)}")
    if kbps is None or not kbps > 0:
        raise ConfigError(f"codec={name} needs a rate above 0 kbit/s, e.g. kbps=8")
    return TransformCoder(kbps) if name == "dct" else FFmpegCodec(name, kbps)


def kbps_of(data: bytes, samples: int, sample_rate: int) -> float:
    """A compressed song's rate: its size in bits over its duration, in kbit/s."""
    return len(data) * 8 / (samples / sample_rate) / 1000
