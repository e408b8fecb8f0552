import numpy as np
import pytest
import torch

from aerecon.audio.representation import RFFT, MuLaw, Raw
from aerecon.utils.errors import ConfigError


@pytest.mark.parametrize("n", [13230, 13231, 2, 3, 1000, 1001])
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_rfft_packing_is_lossless_at_n_values(n, norm):
    wave = torch.randn(4, 1, n) * 0.3
    rep = RFFT(norm)
    packed = rep.encode(wave)
    assert packed.shape == wave.shape
    assert (rep.decode(packed) - wave).abs().max() < 1e-5


@pytest.mark.parametrize("n", [8, 9])
def test_rfft_layout_matches_numpy(n):
    wave = np.random.default_rng(0).standard_normal(n)
    spectrum = np.fft.rfft(wave)  # unnormalised, as the thesis
    expected = [spectrum[0].real]
    for k in range(1, len(spectrum)):
        expected += [spectrum[k].real, spectrum[k].imag]
    packed = RFFT().encode(torch.tensor(wave, dtype=torch.float32).view(1, 1, n))
    np.testing.assert_allclose(packed.view(-1).numpy(), expected[:n], rtol=1e-4, atol=1e-4)


def test_rfft_norms_scale_as_torch_fft():
    wave = torch.randn(1, 1, 1000)
    backward, ortho = RFFT("backward").encode(wave), RFFT("ortho").encode(wave)
    torch.testing.assert_close(backward / 1000**0.5, ortho, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="representation.norm"):
        RFFT("unit")


def test_mulaw_round_trip_and_range():
    wave = torch.linspace(-1, 1, 1001).view(1, 1, -1)
    continuous = MuLaw()
    encoded = continuous.encode(wave)
    assert encoded.abs().max() <= 1.0 + 1e-6
    assert (continuous.decode(encoded) - wave).abs().max() < 1e-5
    # a quiet sample gets far more of the range than it had: the point of companding
    assert continuous.encode(torch.tensor([0.01])).item() > 0.2
    quantized = MuLaw(quantize=True)
    error = (quantized.decode(quantized.encode(wave)) - wave).abs()
    # half of one 8-bit mu-law step: ~0.022 at full scale, far finer near zero
    assert error.max() < 0.5 * (1 - MuLaw().decode(torch.tensor(1 - 2 / 255))) + 1e-6
    assert error[wave.abs() < 0.01].max() < 1e-3
    assert MuLaw().encode(torch.tensor([3.0])).item() == pytest.approx(1.0)  # clipped first


def test_raw_is_identity():
    wave = torch.randn(2, 1, 10)
    assert torch.equal(Raw().decode(Raw().encode(wave)), wave)
