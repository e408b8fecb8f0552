"""The sparse codes' selectors: top-k coefficients and runs of frames (aerecon.models.selection)."""

import itertools
import math

import pytest
import torch
from test_sparseconv import snr_db, tones

from aerecon.models import SparseConvAutoencoder
from aerecon.models.selection import Runs, TopK


def numbers_used(kept: torch.Tensor) -> torch.Tensor:
    """Values plus one descriptor per run of consecutive kept frames in a channel, per segment."""
    mask = kept != 0
    runs = (mask[..., 1:] & ~mask[..., :-1]).sum((1, 2)) + mask[..., 0].sum(1)
    return mask.sum((1, 2)) + runs


def test_runs_are_the_exact_minimiser_of_dropped_energy_plus_a_price_per_number():
    torch.manual_seed(0)
    frames = 6
    energy = torch.rand(40, frames) ** 4  # a few large values among small ones, as in music
    price = torch.full((1, 40), 0.05)
    rate = Runs.runs(price, energy)
    take, start = Runs.runs(price, energy, backtrack=True)
    mask = Runs.backtrack(take[:, 0], start[:, 0])
    for row in range(40):
        best = min(
            (energy[row][~torch.tensor(m)].sum() + 0.05 * numbers_used(torch.tensor(m, dtype=torch.float)[None, None]))
            for m in itertools.product([False, True], repeat=frames)
        )
        chosen = energy[row][~mask[row]].sum() + 0.05 * numbers_used(mask[row].float()[None, None])
        assert math.isclose(float(chosen), float(best), rel_tol=1e-5, abs_tol=1e-7)
        assert rate[0, row] >= numbers_used(mask[row].float()[None, None])  # adjacent runs may merge: never more


def test_runs_fill_the_budget_and_pack_into_exactly_latent_numbers():
    torch.manual_seed(0)
    net = SparseConvAutoencoder(13230, latent=3300, hop=245, select="runs")
    wave = torch.randn(4, 1, 13230).cumsum(-1) * 0.01  # more low than high frequencies
    sparse = net.encode(wave)
    used = numbers_used(sparse)
    assert (used <= 3299).all() and (used >= 0.97 * 3299).all(), used  # one number says how many runs
    code = net.pack(sparse)
    assert code.shape == (4, 3300) and torch.equal(net.unpack(code), sparse)
    assert torch.equal(code[:, 0], (used - (sparse != 0).sum((1, 2))).float())  # the count of runs comes first


@pytest.mark.parametrize("shape", [(3, 5), (7, 2), (2, 40)])
def test_any_kept_mask_round_trips_through_the_runs_code(shape):
    torch.manual_seed(1)
    for density in (0.0, 0.2, 0.6, 1.0):
        z = torch.randn(5, *shape) * (torch.rand(5, *shape) < density)
        runs = Runs(int(numbers_used(z).max()) + 1)
        assert torch.equal(runs.unpack(runs.pack(z), shape), z)


def test_runs_spend_the_same_budget_better_than_top_k_on_sustained_tones():
    segment = tones(13230) + 0.01 * torch.randn(1, 1, 13230, generator=torch.Generator().manual_seed(0))
    snr = {}
    for select in ("topk", "runs"):
        net = SparseConvAutoencoder(13230, latent=600, hop=245, select=select)
        with torch.no_grad():
            snr[select] = snr_db(segment, net(segment))
    assert snr["runs"] > snr["topk"] + 3, snr


def test_gradients_reach_the_filters_through_the_runs():
    net = SparseConvAutoencoder(1000, latent=60, hop=50, select="runs")
    net(torch.randn(2, 1, 1000)).square().sum().backward()
    assert net.encoder.weight.grad.abs().sum() > 0 and net.decoder.weight.grad.abs().sum() > 0


def test_code_bits_bound_every_runs_code_and_top_k_counts_each_position():
    assert TopK(3300).code_bits((245, 55)) == 1650 * (32 + 14)
    runs = Runs(3300)
    # 12 bits say how many runs; 59 runs of 55 frames hold the most values, 20 bits per descriptor
    assert runs.code_bits((245, 55)) == 12 + 59 * 20 + (3299 - 59) * 32
