import math

import pytest
import torch

from aerecon.models.losses import MSELoss, MultiResolutionSTFTLoss, WeightedSum
from aerecon.utils.errors import ConfigError

RATE = 4410


def sine(freq: float, n: int = 13230) -> torch.Tensor:
    t = torch.arange(n) / RATE
    return torch.sin(2 * math.pi * freq * t).reshape(1, 1, n)


def test_stft_loss_is_zero_for_identical_inputs():
    x = torch.randn(3, 1, 4000) * 0.3
    terms = MultiResolutionSTFTLoss()(x, x)
    assert set(terms) == {"total", "sc", "log_mag"}
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in terms.values())


def test_stft_loss_falls_as_a_sines_frequency_error_shrinks():
    target = sine(440.0)
    errors = [400.0, 200.0, 100.0, 50.0, 20.0, 5.0, 0.0]
    losses = [MultiResolutionSTFTLoss()(sine(440.0 + e), target)["total"].item() for e in errors]
    assert all(a > b for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] == pytest.approx(0.0, abs=1e-6)


def test_stft_loss_reads_waveforms_when_given_both_domains():
    wave, other = torch.randn(2, 1, 2000), torch.randn(2, 1, 2000)
    both = MultiResolutionSTFTLoss()(torch.zeros(2, 1, 5), torch.ones(2, 1, 5), wave, other)["total"]
    assert both == pytest.approx(MultiResolutionSTFTLoss()(wave, other)["total"])


def test_normalized_mse_is_inverse_linear_snr():
    target = torch.randn(4, 1, 10_000)
    noise = torch.randn(4, 1, 10_000) * 0.1  # SNR 20 dB
    assert MSELoss()(target + noise, target)["total"].item() == pytest.approx(0.01, rel=0.05)
    normalized = MSELoss(normalized=True)(100 * (target + noise), 100 * target)["total"].item()
    assert normalized == pytest.approx(0.01, rel=0.05)  # scale-free


def test_weighted_sum_weighs_terms_and_names_their_parts():
    out, target = torch.randn(2, 1, 3000), torch.randn(2, 1, 3000)
    loss = WeightedSum({"mse": MSELoss(), "stft": MultiResolutionSTFTLoss()}, {"mse": 2.0, "stft": 0.5})
    terms = loss(out, target, out, target)
    stft = MultiResolutionSTFTLoss()(out, target)
    assert set(terms) == {"total", "mse", "stft", "stft/sc", "stft/log_mag"}
    assert terms["total"].item() == pytest.approx(2.0 * terms["mse"].item() + 0.5 * stft["total"].item(), rel=1e-5)
    assert terms["stft/sc"] == pytest.approx(stft["sc"])
    with pytest.raises(ConfigError, match="stfft"):
        WeightedSum({"mse": MSELoss()}, {"stfft": 1.0})
