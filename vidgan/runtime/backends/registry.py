"""The backend interface and the registry each backend module fills where it is defined.

A backend takes an NCHW float batch in the model's range on `backend.device` (dtype
`input_dtype`, H and W multiples of `multiple`) and returns the stylized batch on that device,
without synchronizing with the host: the pipeline decides when to wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch


class Backend(Protocol):
    name: str  # "torch-cpu-fp32", "onnxruntime-cpu", "tensorrt-fp16", ...
    model_name: str  # the model file's name, for summaries ("vangogh-realtime.safetensors")
    device: torch.device
    input_dtype: torch.dtype
    multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


Shapes = Sequence[tuple[int, int, int]]  # (N, H, W): batches of up to N frames at H x W


@dataclass(frozen=True)
class BackendEntry:
    name: str
    load: Callable[..., Backend]  # load(model_path, device, precision, shapes, **options)
    devices: tuple[str, ...]  # the device types it runs on ("cpu", "cuda")
    auto: dict[str, int]  # device type -> place in `auto`'s order there (0 first)
    usable: Callable[[Path, torch.device, Shapes], bool]  # can `auto` pick it for this run?
    options: tuple[str, ...] = ()  # keyword options only this backend takes


BACKENDS: dict[str, BackendEntry] = {}


def _always(model: Path, device: torch.device, shapes: Shapes) -> bool:
    return True


def register(name: str, *, devices: tuple[str, ...], auto: dict[str, int], usable=_always,
             options: tuple[str, ...] = ()):
    """Register a loader: load(model_path, device, precision, shapes, **options) -> Backend.

    devices: the device types it runs on. auto: where `auto` tries it on each device type ({"cpu": 0}: first on the CPU; a device type
    left out: never there); usable(model_path, device, shapes): whether `auto` may pick it.
    """
    def add(load):
        BACKENDS[name] = BackendEntry(name, load, devices, auto, usable, options)
        return load

    return add


def auto_order(device_type: str) -> list[BackendEntry]:
    """The backends `auto` tries on a device type, fastest first."""
    entries = [e for e in BACKENDS.values() if device_type in e.auto]
    return sorted(entries, key=lambda e: e.auto[device_type])
