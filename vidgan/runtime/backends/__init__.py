"""One inference interface, several implementations, chosen by name (see registry.py).

A new backend is one module here that registers its loader with `@register(...)`, imported
below, plus its test.
"""

from __future__ import annotations

from pathlib import Path

from vidgan.core import modelfile
from vidgan.core.device import resolve_device
from vidgan.core.errors import VidganError
from vidgan.runtime.backends.registry import BACKENDS, Backend, Shapes, auto_order

# Each module registers its backend where it is defined; the order here is the help's order.
# isort: off
from vidgan.runtime.backends import torch_backend  # noqa: F401
from vidgan.runtime.backends import ort_backend  # noqa: F401
from vidgan.runtime.backends import trt_backend  # noqa: F401
# isort: on

PRECISIONS = ("auto", "fp32", "fp16", "int8")

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "backend_names", "load_backend"]


def backend_names() -> tuple[str, ...]:
    """What --backend takes: "auto" and every registered backend."""
    return ("auto", *BACKENDS)


def load_backend(
    model: str | Path | None = None,
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
    *,
    shapes: Shapes = (),
    **options,
) -> Backend:
    """Load `model` (a model file; None = the bundled one) behind the named backend.

    backend: "auto" picks the first usable backend of the device's order (registry.auto_order):
        on CUDA a TensorRT engine built for this model and GPU when there is one that takes
        `shapes`, else torch fp16; on the CPU onnxruntime (about 1.8x torch eager for vidgan's
        generators in `vidgan bench model`). The result's `name` says which, its `model_name`
        which model file.
    device: "cpu", "cuda", "cuda:N", or None / "auto" (CUDA when available).
    precision: "fp32", "fp16", "int8" (onnxruntime on the CPU, refused where it strays from
        fp32; see vidgan.runtime.export.int8) or "auto" (fp16 on CUDA, fp32 on the CPU).
    shapes: what the caller will run, as (N, H, W) items: batches of up to N frames processed at
        H x W (before padding to the model's multiple). "auto" skips a TensorRT engine whose
        profile doesn't take them, saying why in a warning line; "tensorrt" refuses it up front.
    options: options of one backend, e.g. torch's compile and cuda_graphs (torch.compile the
        generator; replay CUDA graphs captured per input shape). Given, "auto" means the first
        backend that takes them.
    """
    if backend not in backend_names():
        raise VidganError(f"unknown backend {backend!r}; choose one of: {', '.join(backend_names())}")
    if precision not in PRECISIONS:
        raise VidganError(
            f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = resolve_device(device)
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    model = modelfile.resolve(model)
    options = {k: v for k, v in options.items() if v}
    entry = _fastest(model, dev, shapes, options) if backend == "auto" else BACKENDS[backend]
    refused = [k for k in options if k not in entry.options]
    if refused:
        flags = " and ".join(f"--{k.replace('_', '-')}" for k in refused)
        owners = [e.name for e in BACKENDS.values() if set(refused) <= set(e.options)]
        raise VidganError(f"{flags} apply to the {' or '.join(owners) or 'no'} backend, not {entry.name}")
    loaded = entry.load(model, dev, precision, shapes, **options)
    loaded.model_name = model.name
    return loaded


def _fastest(model: Path, device, shapes: Shapes, options: dict):
    for entry in auto_order(device.type):
        if set(options) <= set(entry.options) and entry.usable(model, device, shapes):
            return entry
    raise VidganError(f"no backend runs on {device.type} here")
