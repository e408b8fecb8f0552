"""Whole-song reconstruction from fixed-length segments, without clicks at the joins.

The thesis reconstructed 3 s segments independently and butted them together, which left
a click every 3 s. Here segments overlap and their reconstructions are overlap-added with a
window, normalised by the summed window:

- `crossfade` (overlap 0 to 0.5): ones with sin^2 / cos^2 ramps over the overlap, so each
  join is a smooth blend of two reconstructions; overlap 0 is the thesis's butt joins.
- `notched` (`notches` = k, the default with k = 8): sin^2(k pi t / n), zero at the k points
  j n / k of every segment, hop n / (2k), so 2k segments cover every sample. Models in the
  RFFT domain put impulses at such fixed points of every segment: a spectrum with period-2^m
  structure, as m strided transposed convolutions produce, decodes to clicks at multiples
  of n / 2^m. The thesis conv model (three stride-2 layers) clicks at multiples of n / 8,
  loudest at n / 4 and n / 2. This window never lets one through, at 2k times the compute
  of butt joins. k = 1 is a plain Hann cross-fade with overlap 0.5.

The song is padded with `segment - hop` samples of silence at both ends, so its first and
last samples are covered like any other (no half-weighted edge).
"""

import math
from collections.abc import Callable, Iterable, Iterator

import torch

from aerecon.utils.errors import ConfigError

WINDOWS = ("crossfade", "notched")


def check_stitch(
    window: str = "notched", overlap: float = 0.5, notches: int = 8, segment: int | None = None, prefix: str = ""
) -> None:
    """The rules of the stitch settings, checked once, here: `prefix` is how the user names them
    (e.g. "stitch."); the notches' upper bound needs the segment's length."""
    if window not in WINDOWS:
        raise ConfigError(f"{prefix}window={window!r}: use one of {', '.join(WINDOWS)}, e.g. {prefix}window=notched")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= overlap <= 0.5:
        raise ConfigError(
            f"{prefix}overlap={overlap}: a crossfade window takes 0 (butt joins) to 0.5, e.g. {prefix}overlap=0.5; "
            f"for more, use {prefix}window=notched"
        )
    most = segment // 4 if segment is not None and window == "notched" else None
    if (
        isinstance(notches, bool)
        or not isinstance(notches, int)
        or notches < 1
        or (most is not None and notches > most)
    ):
        raise ConfigError(
            f"{prefix}notches={notches}: the notched window takes a whole number from 1 to a quarter of the segment, "
            f"e.g. {prefix}notches=8"
        )


class Stitcher:
    def __init__(self, segment: int, window: str = "notched", overlap: float = 0.5, notches: int = 8):
        check_stitch(window, overlap, notches, segment)
        self.segment, self.window_name = segment, window
        self.hop = (
            max(1, segment - round(overlap * segment)) if window == "crossfade" else round(segment / (2 * notches))
        )
        self.lead = segment - self.hop  # silence around the song: every song sample gets full coverage
        t = torch.arange(segment, dtype=torch.float64) + 0.5
        if window == "notched":
            self.window = torch.sin(notches * math.pi * t / segment) ** 2
        else:
            ramp = segment - self.hop
            self.window = torch.ones(segment, dtype=torch.float64)
            if ramp:
                fade_in = torch.sin(math.pi / 2 * t[:ramp] / ramp) ** 2  # shifted copies sum to one
                self.window[:ramp], self.window[-ramp:] = fade_in, fade_in.flip(0)

    def starts(self, length: int) -> list[int]:
        """Song positions where segments start: from `lead` before the song to `lead` past its end."""
        count = math.ceil(max(length + 2 * self.lead - self.segment, 0) / self.hop) + 1
        return [k * self.hop - self.lead for k in range(count)]

    def seams(self, length: int) -> list[int]:
        """Samples inside the song where a segment starts or ends: where butt joins would click."""
        edges = {p for start in self.starts(length) for p in (start, start + self.segment) if 0 < p < length}
        return sorted(edges)

    @torch.no_grad()
    def __call__(
        self, reconstruct: Callable[[torch.Tensor], torch.Tensor], song: torch.Tensor, batch_size: int = 40
    ) -> torch.Tensor:
        """Reconstruct a 1-D song; `reconstruct` maps waveforms [B, 1, segment] to the same."""
        pieces = list(self.stream(reconstruct, [song], batch_size))
        return torch.cat(pieces) if pieces else song.new_zeros(0)

    @torch.no_grad()
    def stream(
        self, reconstruct: Callable[[torch.Tensor], torch.Tensor], blocks: Iterable[torch.Tensor], batch_size: int = 40
    ) -> Iterator[torch.Tensor]:
        """As `__call__`, for a song that arrives as consecutive 1-D blocks: yields its reconstruction
        as consecutive blocks, holding about one batch of segments, whatever the song's length.
        The batches and the order of the sums are those of one call on the whole song, so the two
        agree to the last bit."""
        pending, total, weight, window = None, None, None, None
        start = 0  # padded position of pending[0], total[0] and weight[0]; the song starts at `lead`
        length = given = count = 0  # song samples received and given back; segments reconstructed

        def run(segments: int):
            nonlocal pending, total, weight, start, count, given
            last = count + segments
            for first in range(count, last, batch_size):
                batch = range(first, min(first + batch_size, last))
                inputs = torch.stack([pending[k * self.hop - start :][: self.segment] for k in batch]).unsqueeze(1)
                outputs = reconstruct(inputs).squeeze(1).to(total)
                grow = batch[-1] * self.hop + self.segment - start - len(total)
                if grow > 0:
                    total, weight = (torch.nn.functional.pad(t, (0, grow)) for t in (total, weight))
                for k, output in zip(batch, outputs):
                    where = slice(k * self.hop - start, k * self.hop - start + self.segment)
                    total[where] += window * output
                    weight[where] += window
                count = batch[-1] + 1
                # every position before the next segment's start has all its terms
                done = min(count * self.hop, self.lead + length)
                if done > self.lead + given:
                    part = slice(self.lead + given - start, done - start)
                    yield (total[part] / weight[part]).float()
                    given = done - self.lead
                drop = count * self.hop - start
                pending, total, weight, start = pending[drop:], total[drop:], weight[drop:], start + drop

        for block in blocks:
            if pending is None:
                pending = block.new_zeros(self.lead, dtype=torch.float32)
                total = torch.zeros(0, dtype=torch.float64, device=block.device)
                weight, window = torch.zeros_like(total), self.window.to(block.device)
            pending = torch.cat([pending, block.float()])
            length += len(block)
            ready = (start + len(pending) - self.segment) // self.hop + 1 - count  # segments wholly received
            yield from run(ready // batch_size * batch_size)
        if pending is None:
            return
        starts = self.starts(length)
        end = starts[-1] + self.segment + self.lead  # the padded song, silence after it included
        pending = torch.nn.functional.pad(pending, (0, end - start - len(pending)))
        yield from run(len(starts) - count)
