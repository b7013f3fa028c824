"""One inference interface, several implementations.

A backend takes an NCHW float batch in [-1, 1] on `backend.device` (dtype `input_dtype`,
H and W multiples of `multiple`) and returns the stylized batch on that device, without
synchronizing with the host: the pipeline decides when to wait.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from vidgan.core import modelfile
from vidgan.core.errors import VidganError


class Backend(Protocol):
    name: str  # "torch-cpu-fp32", "onnxruntime-cpu", "tensorrt-fp16", ...
    model_name: str  # the model file's name, for summaries ("vangogh-realtime.safetensors")
    device: torch.device
    input_dtype: torch.dtype
    multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def _torch(model, device: torch.device, precision: str, **options) -> Backend:
    from vidgan.runtime.backends.torch_backend import TorchBackend

    return TorchBackend.from_file(model, device, precision, **options)


def _onnxruntime(model, device: torch.device, precision: str) -> Backend:
    from vidgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend.from_file(model, device, precision)


def _tensorrt(model, device: torch.device, precision: str, shapes=()) -> Backend:
    """The engine built for this model, TensorRT version and GPU that takes `shapes` (its
    precision is its own)."""
    from vidgan.runtime.backends.trt_backend import TensorRTBackend

    return TensorRTBackend.for_model(model, device, shapes=shapes)


# name -> loader(model, device, precision, **options): torch options reach the torch loader,
# shapes the TensorRT one.
LOADERS: dict[str, Callable[..., Backend]] = {
    "torch": _torch,
    "onnxruntime": _onnxruntime,
    "tensorrt": _tensorrt,
}
BACKENDS = ("auto", *LOADERS)
PRECISIONS = ("auto", "fp32", "fp16")


def load_backend(
    model: str | Path | None = None,
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
    *,
    compile: bool = False,
    cuda_graphs: bool = False,
    shapes: Sequence[tuple[int, int, int]] = (),
) -> Backend:
    """Load `model` (a model file; None = the bundled one) behind the named backend.

    backend: "auto" picks the fastest available: on CUDA a TensorRT engine built for this model
        and GPU when there is one that takes `shapes`, else torch fp16; on the CPU onnxruntime
        (about 1.8x torch eager for vidgan's generators in `vidgan bench model`). The result's
        `name` says which, its `model_name` which model file.
    device: "cpu", "cuda", "cuda:N", or None / "auto" (CUDA when available).
    precision: "fp32", "fp16" or "auto" (fp16 on CUDA, fp32 on the CPU).
    compile, cuda_graphs: torch only: torch.compile the generator; replay CUDA graphs captured
        per input shape (GPU only). Either makes "auto" mean torch.
    shapes: what the caller will run, as (N, H, W) items: batches of up to N frames processed at
        H x W (before padding to the model's multiple). "auto" skips a TensorRT engine whose
        profile doesn't take them, saying why in a warning line; "tensorrt" refuses it up front.
    """
    if backend not in BACKENDS:
        raise VidganError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise VidganError(
            f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = resolve_device(device)
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    model = modelfile.resolve(model)
    torch_options = {"compile": compile, "cuda_graphs": cuda_graphs}
    if backend == "auto":
        backend = "torch" if any(torch_options.values()) else _fastest(model, dev, shapes)
    if backend == "torch":
        loaded = LOADERS[backend](model, dev, precision, **torch_options)
    elif any(torch_options.values()):
        raise VidganError(f"--compile and --cuda-graphs apply to the torch backend, not {backend}")
    elif backend == "tensorrt":
        loaded = LOADERS[backend](model, dev, precision, shapes=shapes)
    else:
        loaded = LOADERS[backend](model, dev, precision)
    loaded.model_name = model.name
    return loaded


def _fastest(model: str | Path | None, device: torch.device, shapes) -> str:
    if device.type == "cuda":
        from vidgan.runtime.backends.trt_backend import choose_engine

        engine, why = choose_engine(model, shapes, device=device)
        if why:  # there is an engine for this model, but not one for this run
            print(f"warning: not using TensorRT: {why}; running torch instead", file=sys.stderr)
        return "tensorrt" if engine is not None else "torch"
    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"


def resolve_device(device: str | None) -> torch.device:
    """The torch device for a --device value; a user error when it can't be used here."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise VidganError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise VidganError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise VidganError(f"--device {device} was asked for but no CUDA GPU is visible to "
                              "PyTorch; use --device cpu")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise VidganError(f"--device {device}: there are only {torch.cuda.device_count()} GPUs")
        dev = torch.device("cuda", index)
    return dev


CACHE_ENV = "VIDGAN_CACHE"


def cache_dir() -> Path:
    """The per-user folder for what vidgan builds on its own (ONNX exports, TensorRT engines):
    $VIDGAN_CACHE, else $XDG_CACHE_HOME/vidgan, else ~/.cache/vidgan. Never the checkout or the
    model's folder: rendering a video writes nothing beside the user's files."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vidgan"


def cpu_cores() -> int:
    """Cores this process may run on (the container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
