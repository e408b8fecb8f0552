"""Where could training add SNR to the sparse MDCT code of `experiment=best`? Four probes.

    python experiments/learned_gain.py [--data data/nexuiz] [--fill-minutes 10] [--select topk|runs]

The code under test is sparseconv's start: each 3 s segment's 1650 largest coefficients of a
sine-window MDCT with hop 245, with their positions (3300 numbers). On `make bench`'s songs, at
4410 Hz, segments butt-joined, SNR per song averaged over songs (as latent_bounds.py):

- **Learned orthogonal transform.** A 245 x 245 orthogonal matrix R after the MDCT, so that the
  transform stays orthonormal and lapped: code = top-k of R^T (MDCT frame). Fitted on the
  training songs by alternating the top-k choice with the orthogonal Procrustes solution for R
  (a sparse orthonormal transform): the exact minimiser of the training error in each step,
  which gradient steps on the same objective could only approach.
- **A decoder that fills in what the code dropped.** A 2-D conv net over the [bins, frames]
  grid of kept coefficients and their mask predicts the dropped ones (kept ones pass through
  exactly), trained for --fill-minutes on random 3 s crops of the training songs with the
  normalised MSE.
- **The best linear fill-in** (closed form, not trained): each dropped coefficient predicted from
  the kept ones around it (9 bins x 7 frames, dropped ones as zeros, scaled by the segment's
  RMS) by weights fitted by least squares on the training songs, one set per parity of bin and
  frame (the MDCT's signs alternate with both) and per fifth of the band. What a linear decoder
  can recover of what the code dropped, at best.
- **Several hops, one joint top-k** (not learned): the union of MDCTs with hops 63, 245 and 735,
  1650 coefficients chosen jointly by normalised iterative hard thresholding. Positions then
  index a three-times larger grid (2 more bits each).

With --select runs, the code under test is experiment=best's today: runs of frames per channel
in the same 3300 numbers (aerecon.models.selection.Runs), and only the fill-in decoders are probed.

Writes experiments/results/learned_gain.md (learned_gain_runs.md with --select runs) and prints it.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aerecon.models.selection import Runs, TopK
from aerecon.models.sparseconv import SparseConvAutoencoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music_songs  # noqa: E402

RATE, SEGMENT, KEPT, HOP = 4410, 13230, 1650, 245


class Filterbank:
    """sparseconv's MDCT start at one hop: analysis [B, 1, n] -> [B, hop, frames] and synthesis."""

    def __init__(self, hop: int):
        self.net = SparseConvAutoencoder(SEGMENT, 2 * KEPT, hop).requires_grad_(False)

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encoder(F.pad(x, (0, -x.shape[-1] % self.net.hop)))

    def synthesise(self, c: torch.Tensor) -> torch.Tensor:
        return self.net.decoder(c)[..., :SEGMENT]


def keep_top(cs: list[torch.Tensor], k: int = KEPT) -> list[torch.Tensor]:
    """The k largest magnitudes over all of a segment's grids jointly; the rest zeroed."""
    flat = torch.cat([c.flatten(1) for c in cs], 1)
    index = flat.abs().topk(k, 1).indices
    kept = torch.zeros_like(flat).scatter(1, index, flat.gather(1, index))
    return [part.view_as(c) for part, c in zip(kept.split([c[0].numel() for c in cs], 1), cs)]


def segments(song: np.ndarray, step: int = SEGMENT) -> torch.Tensor:
    x = torch.from_numpy(song)
    if step == SEGMENT:
        x = F.pad(x, (0, -len(x) % SEGMENT))
    return x.unfold(0, SEGMENT, step).unsqueeze(1)


def mean_snr(songs: list[np.ndarray], code) -> float:
    """SNR of each song's butt-joined coded segments, averaged over songs."""
    values = []
    with torch.no_grad():
        for song in songs:
            x = segments(song)
            y = torch.cat([code(b) for b in x.split(32)])
            values.append(10 * torch.log10(x.square().sum() / (x - y).square().sum()).item())
    return float(np.mean(values))


def fit_rotation(train: torch.Tensor, bank: Filterbank, steps: int, log) -> torch.Tensor:
    """Sparse orthonormal transform: alternate the top-k code with R = Procrustes(frames, code)."""
    z = torch.cat([bank.analyse(b) for b in train.split(64)]).double()
    rotation = torch.eye(HOP, dtype=torch.float64)
    for step in range(steps):
        code = keep_top([torch.einsum("kj,bkt->bjt", rotation, z)])[0]
        u, _, vh = torch.linalg.svd(torch.einsum("bkt,bjt->kj", z, code))
        rotation = u @ vh
        log(f"  rotation step {step + 1}/{steps}")
    return rotation.float()


def rms(kept: torch.Tensor) -> torch.Tensor:
    """Each segment's RMS over its grid [B, 1, 1]: the fill-ins work on scale-free coefficients."""
    return kept.square().flatten(1).mean(1).sqrt().clamp_min(1e-8)[:, None, None]


class Fill(nn.Module):
    """Predicts the dropped coefficients from the kept ones and their mask; scale-equivariant."""

    def __init__(self, width: int = 32, depth: int = 6):
        super().__init__()
        layers = [nn.Conv2d(2, width, 3, padding=1), nn.GELU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def forward(self, kept: torch.Tensor) -> torch.Tensor:
        mask = (kept != 0).to(kept.dtype)
        scale = rms(kept)
        guess = self.net(torch.stack([kept / scale, mask], 1)).squeeze(1) * scale
        return kept + (1 - mask) * guess


def train_fill(songs: list[np.ndarray], bank: Filterbank, minutes: float, select) -> tuple[Fill, int]:
    fill = Fill()
    optimizer = torch.optim.Adam(fill.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    waves = [torch.from_numpy(s) for s in songs]
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < minutes * 60:
        picks = torch.randint(len(waves), (16,), generator=generator).tolist()
        x = torch.stack(
            [
                w[o : o + SEGMENT]
                for w in (waves[i] for i in picks)
                for o in torch.randint(len(w) - SEGMENT, (1,), generator=generator).tolist()
            ]
        ).unsqueeze(1)
        with torch.no_grad():
            z = bank.analyse(x)
            kept = select(z)
        loss = (fill(kept) - z).square().sum() / z.square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    return fill, steps


def linear_fill(songs: list[np.ndarray], bank: Filterbank, select, bins: int = 4, frames: int = 3, bands: int = 5):
    """Least-squares weights from the kept neighbourhood to each dropped coefficient (see above)."""
    groups = 4 * bands  # parity of bin and frame, per band

    def neighbours(kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = rms(kept)
        grid = F.unfold((kept / scale)[:, None], (2 * bins + 1, 2 * frames + 1), padding=(bins, frames))
        c, t = kept.shape[1:]
        parity = torch.arange(c)[:, None] % 2 * 2 + torch.arange(t) % 2
        group = (parity + 4 * (torch.arange(c)[:, None] * bands // c)).flatten()
        return grid.transpose(1, 2), group, scale

    size = (2 * bins + 1) * (2 * frames + 1)
    gram = torch.zeros(groups, size, size, dtype=torch.float64)
    moment = torch.zeros(groups, size, dtype=torch.float64)
    with torch.no_grad():
        for x in torch.cat([segments(s, step=SEGMENT // 2) for s in songs]).split(64):
            z = bank.analyse(x)
            kept = select(z)
            grid, group, scale = neighbours(kept)
            target, dropped = (z / scale).flatten(1), (kept == 0).flatten(1)
            for g in range(groups):
                rows = dropped & (group == g)
                inputs = grid[rows].double()
                gram[g] += inputs.T @ inputs
                moment[g] += inputs.T @ target[rows].double()
    weights = torch.linalg.solve(gram + 1e-6 * torch.eye(size), moment).float()

    def code(x: torch.Tensor) -> torch.Tensor:
        z = bank.analyse(x)
        kept = select(z)
        grid, group, scale = neighbours(kept)
        guess = (grid * weights[group]).sum(2).view_as(z) * scale
        return bank.synthesise(torch.where(kept == 0, guess, kept))

    return code


def joint_code(banks: list[Filterbank], iterations: int):
    """Normalised iterative hard thresholding over the union of the filterbanks (a tight frame)."""

    def code(x: torch.Tensor) -> torch.Tensor:
        c = keep_top([bank.analyse(x) / len(banks) for bank in banks])
        for _ in range(iterations):
            gradient = [bank.analyse(x - sum(b.synthesise(ci) for b, ci in zip(banks, c))) for bank in banks]
            on_support = [g * (ci != 0) for g, ci in zip(gradient, c)]
            step = sum(g.square().sum((1, 2)) for g in on_support) / sum(
                b.synthesise(g) for b, g in zip(banks, on_support)
            ).square().sum((1, 2)).clamp_min(1e-12)
            c = keep_top([ci + step[:, None, None] * g for ci, g in zip(c, gradient)])
        return sum(b.synthesise(ci) for b, ci in zip(banks, c))

    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--fill-minutes", type=float, default=10.0)
    parser.add_argument("--rotation-steps", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=60, help="thresholding iterations of the joint code")
    parser.add_argument("--select", choices=["topk", "runs"], default="topk", help="the sparse code under test")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    songs = real_music_songs(args.data, RATE)
    bank = Filterbank(HOP)
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    rows = []

    def row(name: str, code, on_train: bool = True) -> None:
        scores = [
            mean_snr(songs[s], code) if s != "train" or on_train else float("nan") for s in ("train", "val", "test")
        ]
        rows.append(f"| {name} | " + " | ".join("-" if np.isnan(v) else f"{v:.2f}" for v in scores) + " |")
        log(rows[-1])

    topk = args.select == "topk"  # the rotation and joint-hop probes are top-k codes
    select, name = (
        (TopK(2 * KEPT), "MDCT hop 245, top-1650 (experiment=best untrained before runs)")
        if topk
        else (Runs(2 * KEPT), "MDCT hop 245, runs of frames (experiment=best untrained)")
    )
    row(name, lambda x: bank.synthesise(select(bank.analyse(x))))
    if topk and args.rotation_steps:
        rotate(songs, bank, args.rotation_steps, row, log)
    if args.fill_minutes > 0:
        fill, steps = train_fill(songs["train"], bank, args.fill_minutes, select)
        row(
            f"{name.split(' (')[0]} + fill-in decoder ({args.fill_minutes:g} min, {steps} steps of 16)",
            lambda x: bank.synthesise(fill(select(bank.analyse(x)))),
            on_train=False,
        )
    row(
        f"{name.split(' (')[0]} + best linear fill-in (least squares, not trained)",
        linear_fill(songs["train"], bank, select),
    )
    for hops in ((245, 980), (63, 245, 735)) if topk else ():
        row(
            f"hops {'+'.join(map(str, hops))}, joint top-1650 ({args.iterations} iterations, not learned)",
            joint_code([Filterbank(h) for h in hops], args.iterations),
            on_train=False,
        )
    out = args.out or Path(f"experiments/results/learned_gain{'_runs' if args.select == 'runs' else ''}.md")
    command = " ".join(["python experiments/learned_gain.py", *sys.argv[1:]])
    lines = [
        f"`{command}`, {machine('cpu')}, {(time.perf_counter() - started) / 60:.0f} min",
        "",
        "| code (3300 numbers per 3 s) | train SNR dB | val SNR dB | test SNR dB |",
        "|---|---|---|---|",
        *rows,
    ]
    publish(lines, out)


def rotate(songs, bank: Filterbank, steps: int, row, log) -> None:
    train = torch.cat([segments(s, step=SEGMENT // 3) for s in songs["train"]])  # 1 s apart
    rotation = fit_rotation(train, bank, steps, log)
    row(
        f"learned orthogonal transform after the MDCT ({steps} Procrustes steps)",
        lambda x: bank.synthesise(
            torch.einsum("kj,bjt->bkt", rotation, keep_top([torch.einsum("kj,bkt->bjt", rotation, bank.analyse(x))])[0])
        ),
    )


if __name__ == "__main__":
    main()
