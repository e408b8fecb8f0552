"""Whole-song reconstruction from fixed-length segments, without clicks at the joins.

The thesis reconstructed 3 s segments independently and butted them together, which left
a click every 3 s. Here segments overlap by `overlap` of their length and are cross-faded
with raised-cosine ramps that sum to one, so each join is a smooth blend of two
reconstructions; `overlap=0` reproduces the thesis's butt joins.
"""

import math
from collections.abc import Callable

import torch

from aerecon.errors import ConfigError


def hop_length(segment: int, overlap: float) -> int:
    if not 0.0 <= overlap <= 0.5:
        raise ConfigError(f"overlap={overlap}: must be between 0 (butt joins) and 0.5 (half-segment cross-fades)")
    return segment - round(overlap * segment)


def crossfade_window(segment: int, hop: int) -> torch.Tensor:
    """Ones with sin^2 fade-in and cos^2 fade-out ramps of segment - hop samples.

    Shifted copies `hop` apart sum to exactly one: sin^2 + cos^2 over each overlap.
    """
    ramp = segment - hop
    window = torch.ones(segment, dtype=torch.float64)
    if ramp:
        fade_in = torch.sin(math.pi / 2 * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp) ** 2
        window[:ramp] = fade_in
        window[-ramp:] = fade_in.flip(0)
    return window.float()


def segment_starts(length: int, segment: int, hop: int) -> list[int]:
    """Starts of the segments that cover `length` samples (the last one may run past the end)."""
    count = max(1, math.ceil(max(length - segment, 0) / hop) + 1)
    return [k * hop for k in range(count)]


def seam_positions(length: int, segment: int, overlap: float) -> list[int]:
    """Samples where a segment starts or ends inside the song: where butt joins would click."""
    hop = hop_length(segment, overlap)
    edges = set()
    for start in segment_starts(length, segment, hop):
        edges.update(p for p in (start, start + segment) if 0 < p < length)
    return sorted(edges)


@torch.no_grad()
def stitch(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    song: torch.Tensor,
    segment: int,
    overlap: float = 0.5,
    batch_size: int = 40,
) -> torch.Tensor:
    """Reconstruct a 1-D song by segments: `reconstruct` maps waveforms [B, 1, segment] to the same.

    The song is zero-padded to whole segments, reconstructed in batches, overlap-added with
    `crossfade_window`, normalised by the summed window (exactly one inside the song, and
    right at the song's two ends too) and cut back to the song's length.
    """
    hop = hop_length(segment, overlap)
    starts = segment_starts(len(song), segment, hop)
    padded_length = starts[-1] + segment
    padded = torch.nn.functional.pad(song.float(), (0, padded_length - len(song)))
    segments = padded.unfold(0, segment, hop)  # [S, segment]
    window = crossfade_window(segment, hop).to(song.device)
    total = torch.zeros(padded_length, device=song.device)
    weight = torch.zeros(padded_length, device=song.device)
    for first in range(0, len(starts), batch_size):
        outputs = reconstruct(segments[first : first + batch_size].unsqueeze(1)).squeeze(1).float()
        for start, output in zip(starts[first : first + batch_size], outputs):
            total[start : start + segment] += window * output.to(total.device)
            weight[start : start + segment] += window
    return (total / weight)[: len(song)]
