from aerecon.models.base import AutoencoderModule
from aerecon.models.baselines import FourierTopK, LowpassRFFT
from aerecon.models.conv import ConvAutoencoder
from aerecon.models.fc import FCAutoencoder

__all__ = ["AutoencoderModule", "ConvAutoencoder", "FCAutoencoder", "FourierTopK", "LowpassRFFT"]
