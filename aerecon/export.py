"""Export a trained model's encoder and decoder: `aerecon-export ckpt_path=CKPT format=onnx|torchscript
output=DIR` (also `python -m aerecon.export`; conf/export.yaml).

Both take and give waveforms (the representation is inside), for any batch size:
- encoder: wave [batch, 1, segment_samples] -> code [batch, latent_size]
- decoder: code [batch, latent_size] -> wave [batch, 1, segment_samples]
`aerecon_export.json` beside them records the shapes, the sample rate and how closely each
exported part reproduced the eager model when it was written. The RFFT representation is
exported as matrix products (representation.ExportableRFFT), exact at any segment length.
"""

import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from aerecon import __version__
from aerecon.audio.representation import RFFT, ExportableRFFT
from aerecon.models.inference import Autoencoder
from aerecon.training.checkpoint import load
from aerecon.utils.config import CONF_DIR, home_paths
from aerecon.utils.errors import ConfigError, DiskError, exit_on_user_error, reraise_stop_or_disk, sigterm_stops
from aerecon.utils.logs import silence_third_party

log = logging.getLogger(__name__)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# Largest difference from the eager model that an export may show, relative to the output's scale
# (its largest magnitude, or 1 when that is smaller: waveforms are held to 1e-4 itself; an
# unnormalised RFFT code, whose numbers run into the hundreds, to 1e-4 of its largest).
TOLERANCE = 1e-4
ONNX_SINGLE_FILE_BYTES = 1 << 30


def exportable(model: Autoencoder) -> nn.Module:
    """The model's representation, with an RFFT as matrix products that every exporter writes exactly."""
    representation = model.module.representation
    return ExportableRFFT(representation, model.segment_samples) if isinstance(representation, RFFT) else representation


class Encoder(nn.Module):
    """Waveform segments [B, 1, n] -> codes [B, latent_size]: representation, network, bottleneck."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        module = model.module
        self.representation, self.net, self.bottleneck = exportable(model), module.net, module.bottleneck

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        z = self.net.encode(self.representation.encode(wave))
        if self.bottleneck is not None:
            z = self.bottleneck.latent(z)
        return self.net.pack(z)


class Decoder(nn.Module):
    """Codes [B, latent_size] -> waveform segments [B, 1, n]."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.representation, self.net = exportable(model), model.module.net

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.representation.decode(self.net.decode(self.net.unpack(code)))


@contextmanager
def quiet_exporter():
    """The ONNX exporter's and its optimiser's progress messages (and the torchvision notice) are
    not for users; its errors still surface as exceptions."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def within_tolerance(exported: torch.Tensor, expected: torch.Tensor) -> tuple[bool, float]:
    """(whether `exported` reproduces `expected`, the largest absolute difference)."""
    difference = float((exported.float() - expected).abs().max())
    return difference <= TOLERANCE * max(1.0, float(expected.abs().max())), difference


def _write_onnx(part: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    # One file, unless the weights would pass protobuf's 2 GB limit (the thesis models): then beside it, as .onnx.data
    large = sum(t.nbytes for t in part.state_dict().values()) > ONNX_SINGLE_FILE_BYTES
    with quiet_exporter():
        torch.onnx.export(
            part,
            (example,),
            str(path),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch},),
            external_data=large,
            verbose=False,
        )


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime  # here: only exports need it

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def _write_torchscript(part: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(part, (example,), check_trace=False), str(path))


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    return torch.jit.load(str(path))(x)


WRITERS = {"onnx": (_write_onnx, _run_onnx), "torchscript": (_write_torchscript, _run_torchscript)}


def hint(model: Autoencoder, fmt: str) -> str:
    return f"Try format={'torchscript' if fmt == 'onnx' else 'onnx'}, or use aerecon.load"


def near_ties(encoder: Encoder, wave: torch.Tensor, exported: torch.Tensor) -> bool:
    """Whether a quantizing encoder's export differs from it only where two codes are equally near."""
    bottleneck = encoder.bottleneck
    if not hasattr(bottleneck, "equally_near"):
        return False
    z = encoder.net.encode(encoder.representation.encode(wave))
    unpack = encoder.net.unpack
    return bottleneck.equally_near(z, unpack(exported.float()), bottleneck.latent(z), TOLERANCE)


def export(model: Autoencoder, fmt: str, output: Path) -> dict:
    """Writes `encoder` and `decoder` in `fmt` and aerecon_export.json into the new folder
    `output`, each checked against the eager model on a batch of another size than the one
    it was traced with; returns the JSON's content. Nothing is left behind if either fails."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt}: use one of {', '.join(FORMATS)}")
    staging = staging_folder(model, output)
    try:
        errors, ties = write_and_check(model, fmt, output, staging)
        info = {
            "format": fmt,
            **described_parts(model, fmt, staging),
            "sample_rate": model.sample_rate,
            "segment_samples": model.segment_samples,
            "latent_size": model.latent_size,
            "network": type(model.module.net).__name__,
            "max_abs_difference_from_eager": errors,
            # a quantizing encoder may pick the other of two equally near codes (within the tolerance)
            "encoder_differs_only_at_near_ties": ties,
            "aerecon_version": __version__,
        }
        (staging / "aerecon_export.json").write_text(json.dumps(info, indent=2))
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def staging_folder(model: Autoencoder, output: Path) -> Path:
    """A new, empty folder beside `output` to write into, on a disk with room for the export."""
    staging = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as error:
        raise DiskError(f"cannot write output={output} ({error.strerror or error}); nothing was written") from None
    # a full disk can abort TorchScript's writer outright, so the room is checked first
    need = 2 * sum(t.nbytes for t in model.module.state_dict().values()) + 2**20
    free = shutil.disk_usage(staging).free
    if free < need:
        staging.rmdir()
        raise DiskError(
            f"cannot write output={output} (No space left on device: the export needs about "
            f"{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free); nothing was written"
        )
    return staging


def write_and_check(model: Autoencoder, fmt: str, output: Path, staging: Path) -> tuple[dict[str, float], bool]:
    """Writes the encoder and the decoder into `staging` and runs each exported file against the
    eager part: ({part: max difference}, whether the encoder differs only at near ties)."""
    write, run = WRITERS[fmt]
    encoder, decoder = Encoder(model).eval(), Decoder(model).eval()
    noise = torch.Generator().manual_seed(0)
    traced_with = 0.1 * torch.randn(2, 1, model.segment_samples, generator=noise)
    checked_on = 0.1 * torch.randn(3, 1, model.segment_samples, generator=noise)
    errors, ties = {}, False
    steps = tqdm(total=4, desc=f"Exporting to {fmt}", unit="step")
    with torch.no_grad(), steps:
        for name, part, example, check in (
            ("encoder", encoder, traced_with, checked_on),
            ("decoder", decoder, encoder(traced_with), encoder(checked_on)),
        ):
            path = staging / f"{name}{FORMATS[fmt]}"
            try:
                steps.set_postfix_str(f"writing the {name}")
                write(part, example, path)
                steps.update()
                steps.set_postfix_str(f"checking the {name}")
                exported = run(path, check)
                steps.update()
            except Exception as error:  # the exporters raise many types; the reason is in the message
                reraise_stop_or_disk(error, f"output={output}")
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ConfigError(
                    f"the {name} of {type(model.module.net).__name__} cannot be exported to "
                    f"{fmt} ({reason[:300]}); try format="
                    f"{'torchscript' if fmt == 'onnx' else 'onnx'}, or use aerecon.load"
                ) from None
            close, errors[name] = within_tolerance(exported, part(check))
            if not close and name == "encoder" and near_ties(encoder, check, exported):
                ties = True
            elif not close:
                raise ConfigError(
                    f"the exported {name} of {type(model.module.net).__name__} differs from the "
                    f"model by {errors[name]:.3g} (more than {TOLERANCE:g} of its outputs' scale), "
                    f"so it was not kept. {hint(model, fmt)}"
                )
    return errors, ties


def described_parts(model: Autoencoder, fmt: str, staging: Path) -> dict[str, dict]:
    """aerecon_export.json's entries for the encoder and the decoder: shapes and files."""
    parts = {
        "encoder": {"input": ["batch", 1, model.segment_samples], "output": ["batch", model.latent_size]},
        "decoder": {"input": ["batch", model.latent_size], "output": ["batch", 1, model.segment_samples]},
    }
    for name, part in parts.items():
        part["file"] = f"{name}{FORMATS[fmt]}"
        if (staging / f"{part['file']}.data").exists():  # the weights of a large model, beside its graph
            part["weights_file"] = f"{part['file']}.data"
    return parts


def check(cfg: DictConfig) -> Path:
    for key in ("ckpt_path", "output"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise ConfigError(f"{key} is not set: aerecon-export ckpt_path=CKPT format=onnx output=DIR")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format}: use one of {', '.join(FORMATS)}")
    output = Path(str(cfg.output)).expanduser()
    if output.is_symlink():
        raise ConfigError(f"output={output} is a symbolic link; name a new folder for the export")
    if output.exists():
        raise ConfigError(f"output={output} exists; name a new folder for the export")
    if not output.parent.is_dir():
        raise ConfigError(f"output={output}: the folder {output.parent} does not exist")
    return output


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while exporting; nothing was written"):
        output = check(cfg)
        info = export(load(cfg.ckpt_path, "cpu"), cfg.format, output)
        differences = ", ".join(f"{k} {v:.1e}" for k, v in info["max_abs_difference_from_eager"].items())
        log.info(
            "Wrote %s: encoder and decoder (%s), largest difference from the model: %s", output, cfg.format, differences
        )


if __name__ == "__main__":
    main()
