"""One inference interface, several implementations.

A backend takes an NCHW float batch in [-1, 1] on `backend.device` (dtype `input_dtype`,
H and W multiples of `multiple`) and returns the stylized batch on that device, without
synchronizing with the host: the pipeline decides when to wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from vidgan.errors import VidganError


class Backend(Protocol):
    name: str  # "torch-cpu-fp32", "onnxruntime-cpu", "tensorrt-fp16", ...
    device: torch.device
    input_dtype: torch.dtype
    multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


BACKENDS = ("auto", "torch")


def load_backend(
    model: str | Path | None = None,
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
) -> Backend:
    """Load `model` (a model file; None = the bundled one) behind the named backend.

    device: "cpu", "cuda", "cuda:N" or None (CUDA when available).
    precision: "fp32", "fp16" or "auto" (fp16 on CUDA, fp32 on CPU).
    """
    dev = _device(device)
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    if backend in ("auto", "torch"):
        from vidgan.backends.torch_backend import TorchBackend

        return TorchBackend.from_file(model, dev, precision)
    raise VidganError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VidganError("--device cuda was asked for but no CUDA GPU is visible to PyTorch; use --device cpu")
    return dev
