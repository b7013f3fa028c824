"""Which device a command runs on: the one place a --device value becomes a torch.device."""

from __future__ import annotations

import os

import torch

from vidgan.core.errors import VidganError

DEVICE_HELP = "cpu, cuda or cuda:N (default: CUDA when available)."


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for a --device value ("cpu", "cuda", "cuda:N", None or "auto": CUDA
    when available), indexed on CUDA; a user error when it can't be used here."""
    if isinstance(device, torch.device):
        device = str(device)
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


def cpu_cores() -> int:
    """Cores this process may run on (the container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
