"""The benchmarks behind `vidgan bench`: each prints a table and writes JSON to benchmarks/.

Speeds are compared side by side within one run (ratios), because the machines are shared.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def machine() -> dict:
    import os

    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, result: dict) -> Path:
    """benchmarks/results/<name>.json, with the machine and the time of the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def matmul_gflops(size: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """The machine's own fp32 matmul rate: the peak that model speeds are compared with."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9
