"""Time-domain reconstruction metrics (torchmetrics), keyed `<stage>/<name>`."""

from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
from torchmetrics.audio import SignalNoiseRatio


def waveform_metrics(stage: str) -> MetricCollection:
    """MSE, MAE and RMSE over all samples; SNR in dB per segment, averaged."""
    return MetricCollection(
        {
            "mse": MeanSquaredError(),
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "snr_db": SignalNoiseRatio(),
        },
        prefix=f"{stage}/",
    )
