"""FP32 ONNX -> INT8 ONNX for onnxruntime on the CPU, kept only when it stays close to FP32.

Static quantization (onnxruntime.quantization): weights int8 per channel, activations uint8,
QDQ format, ranges calibrated on photographs. The result is checked against the FP32 graph on
other images, flat colours and gradients among them (the content whose ranges calibration on
photos misses), and refused below INT8_MIN_PSNR.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from vidgan.core.errors import VidganError
from vidgan.core.files import atomic_path
from vidgan.runtime.export.onnx import INPUT, set_metadata
from vidgan.runtime.export.verify import psnr, sample_images

INT8_MIN_PSNR = 40.0


def quantize_int8(onnx_path: str | Path, int8_path: str | Path,
                  min_psnr: float | None = None) -> tuple[Path, float]:
    """(int8_path, its worst PSNR against the FP32 graph); VidganError below `min_psnr`
    (default INT8_MIN_PSNR)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(calibration_images())

    class Reader(CalibrationDataReader):
        def get_next(self):
            x = next(batches, None)
            return None if x is None else {INPUT: x[None].numpy()}

    int8_path = Path(int8_path)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)  # dynamic H, W
        with _root_logger_quiet():
            quantize_static(str(prepared), str(Path(tmp) / "int8.onnx"), Reader(),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = onnx.load(str(Path(tmp) / "int8.onnx"))
    worst = _psnr_against(onnx_path, model.SerializeToString(), check_images())
    bound = INT8_MIN_PSNR if min_psnr is None else min_psnr
    if not worst >= bound:
        raise VidganError(f"int8 moves this model's output too far from fp32 (PSNR {worst:.1f} dB, "
                          f"below {bound:.0f}); use --precision fp32")
    set_metadata(model, {"vidgan.precision": "int8", "vidgan.int8_psnr_db": f"{worst:.1f}"})
    with atomic_path(int8_path) as tmp:
        onnx.save(model, str(tmp))
    return int8_path, worst


@contextlib.contextmanager
def _root_logger_quiet():
    """The quantizer warns on the root logger for each 1-D constant it quantizes per tensor
    rather than per channel ("Axis 1 is out-of-range"): dozens of lines that need no action."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_images() -> list[torch.Tensor]:
    """The sample photographs and mirrored (3, 256, 256), then flat colours and a horizontal
    ramp: calibrated on photos alone, a flat sky fell to 39 dB."""
    synthetic = [_flat((230, 180, 90), 256, 256), _flat((128, 128, 128), 256, 256),
                 _ramp(256, 256, vertical=False)]
    return [*sample_images(6), *synthetic]


def check_images() -> list[torch.Tensor]:
    """Others: the sample photographs at another size and shape, a flat sky, a dark flat grey
    and a vertical ramp."""
    synthetic = [_flat((135, 190, 235), 256, 384), _flat((20, 20, 20), 256, 384),
                 _ramp(256, 384, vertical=True)]
    return [*sample_images(3, size=(256, 384)), *synthetic]


def _flat(rgb: tuple[int, int, int], h: int, w: int) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=torch.float32) / 127.5 - 1).view(3, 1, 1).expand(3, h, w)


def _ramp(h: int, w: int, vertical: bool) -> torch.Tensor:
    values = torch.linspace(-0.9, 0.9, h if vertical else w)
    return (values.view(1, h, 1) if vertical else values.view(1, 1, w)).expand(3, h, w)


def _psnr_against(onnx_path: str | Path, int8_model: bytes, images: list[torch.Tensor]) -> float:
    import onnxruntime as ort

    def run(model) -> np.ndarray:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        return [session.run(None, {INPUT: x[None].numpy()})[0] for x in images]

    return min(psnr(a, b) for a, b in zip(run(str(onnx_path)), run(int8_model)))
