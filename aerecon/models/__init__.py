from aerecon.models.baselines import FourierSparse, FourierTopK, LowpassRFFT
from aerecon.models.bottlenecks import ScalarQuantizer, VAEBottleneck, VectorQuantizer
from aerecon.models.conv import ConvAutoencoder
from aerecon.models.fc import FCAutoencoder
from aerecon.models.module import AutoencoderModule
from aerecon.models.net import Net
from aerecon.models.resconv import ResConvAutoencoder
from aerecon.models.sparseconv import SparseConvAutoencoder

__all__ = [
    "AutoencoderModule",
    "ConvAutoencoder",
    "FCAutoencoder",
    "FourierSparse",
    "FourierTopK",
    "LowpassRFFT",
    "Net",
    "ResConvAutoencoder",
    "ScalarQuantizer",
    "SparseConvAutoencoder",
    "VAEBottleneck",
    "VectorQuantizer",
]
