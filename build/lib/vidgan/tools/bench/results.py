"""What every benchmark shares: the machine it ran on, the JSON it writes (to --out or the
per-user cache, never into the package or the checkout), and the machine's own matmul peak."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from vidgan.core.cache import results_dir
from vidgan.core.files import write_atomic


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, result: dict, out: str | Path | None = None) -> Path:
    """<out>/<name>.json (default out: the cache's results/), with the machine and the time of
    the run. The results quoted in BENCHMARKS.md are files a person copies into benchmarks/."""
    path = Path(out or results_dir()) / f"{name}.json"
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **result}
    write_atomic(path, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def sync(device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(size: int = 2048, seconds: float = 2.0, device: str = "cpu",
                  precision: str = "fp32") -> float:
    """The machine's own matmul rate in `precision` ("fp32", "tf32" or "fp16"): the peak that
    model speeds are compared with (see peak_precision). fp32 is strict: TF32 off."""

    dtype = torch.float16 if precision == "fp16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        a @ b
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            n += 1
        if device != "cpu":
            torch.cuda.synchronize()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def peak_precision(backend_name: str, device_type: str, tf32: bool) -> str:
    """The matmul precision a backend's speed is compared with: an fp16 backend (its name says
    so: torch-cuda-fp16, onnxruntime-cuda-fp16, tensorrt-fp16) with the fp16 matmul; an fp32 one
    on CUDA with the TF32 matmul when `tf32` (torch.backends.cudnn.allow_tf32, on by default:
    cuDNN then runs fp32 convolutions on TF32 tensor cores, as onnxruntime and TensorRT do by
    default), else with the strict fp32 matmul."""
    if "fp16" in backend_name.split("-"):
        return "fp16"
    return "tf32" if device_type == "cuda" and tf32 else "fp32"
