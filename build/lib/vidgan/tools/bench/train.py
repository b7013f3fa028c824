"""`vidgan bench train`: training iterations/s and peak memory of one full CycleGAN step."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from vidgan.core import models
from vidgan.core.device import resolve_device
from vidgan.tools.bench.results import sync, write_result
from vidgan.train import cyclegan as training


def bench_train(generators=None, crops=(256, 128), batches=(1, 4), steps: int = 5,
                device: str | None = None, out: str | Path | None = None) -> dict:
    """Training iterations/s and peak memory of one full CycleGAN step (G, F, D_Y, D_X).

    Each (generator, crop, batch) runs in a fresh process so that its peak RSS is its own; on
    CUDA the peak is torch.cuda.max_memory_allocated. Inputs are random tensors already on the
    device: this measures the models, not data loading. One warm-up step is not timed.
    `device` None: CUDA when available, else the CPU.
    Prints a table and writes train.json in `out` (see write_result); returns what it wrote.
    """

    device = str(resolve_device(device))
    rows = []
    for name in generators or models.generators(trainer="train"):
        with torch.device("meta"):
            multiple = models.build(name).multiple
        for crop in crops:
            for batch in batches:
                row = {"generator": name, "crop": crop, "batch": batch}
                if crop % multiple:
                    row["skipped"] = f"crop must be a multiple of {multiple}"
                else:
                    row.update(_train_step_in_subprocess(name, crop, batch, steps, device))
                rows.append(row)
    table = Table("generator", "crop", "batch", "it/s", "images/s", "RSS peak MiB",
                  "RSS base MiB", "CUDA peak MiB",
                  title=f"vidgan train step on {device} ({steps} steps each)")
    for r in rows:
        if "it_per_s" in r:
            cuda = r["cuda_peak_mib"]
            cells = [f"{r['it_per_s']:.3f}", f"{r['it_per_s'] * r['batch']:.2f}",
                     f"{r['peak_rss_mib']:.0f}", f"{r['rss_before_step_mib']:.0f}",
                     "-" if cuda is None else f"{cuda:.0f}"]
        else:
            cells = ["skipped" if "skipped" in r else "failed", "", "", "", ""]
        table.add_row(r["generator"], str(r["crop"]), str(r["batch"]), *cells)
    Console().print(table)
    for r in rows:
        if "it_per_s" not in r:
            why = r.get("skipped") or r.get("error")
            print(f"{r['generator']} crop {r['crop']} batch {r['batch']}: {why}")
    result = {"device": device, "steps": steps, "rows": rows}
    write_result("train", result, out)
    return result


def _train_step_in_subprocess(name: str, crop: int, batch: int, steps: int, device: str) -> dict:
    spec = json.dumps({"generator": name, "crop": crop, "batch": batch, "steps": steps,
                       "device": device})
    code = "import sys; from vidgan.tools.bench.train import train_step_worker; train_step_worker(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, spec], check=False, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_step_worker(spec_json: str) -> None:
    """Child process of bench_train: time `steps` training steps, print one JSON line."""
    import resource



    spec = json.loads(spec_json)
    cfg = training.TrainConfig(generator=spec["generator"], crop=spec["crop"],
                               batch_size=spec["batch"], device=spec["device"])
    _, _, device = training.setup(cfg)
    gan = training.CycleGAN(cfg, device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch + models
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    shape = (spec["batch"], 3, cfg.crop, cfg.crop)
    x = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)
    y = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)
    gan.step(x, y)  # warm-up: allocator, cuDNN autotuning
    sync(device)
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        gan.step(x, y)
    sync(device)
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({"it_per_s": spec["steps"] / seconds, "cuda_peak_mib": cuda_peak,
                      "rss_before_step_mib": rss_before,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))



