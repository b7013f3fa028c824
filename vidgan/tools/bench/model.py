"""`vidgan bench model`: model-only frames/s per backend, generator and size, beside the
machine's matmul rate."""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from vidgan.core import models
from vidgan.core.cache import engines_dir, writable
from vidgan.core.device import resolve_device
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import BUNDLED, REALTIME, load_model, read_info, resolve, save_model
from vidgan.runtime.backends import BACKENDS, backend_names, load_backend
from vidgan.tools.bench.results import matmul_gflops, peak_precision, sync, write_result

MODEL_SIZES = ((256, 256), (360, 640), (720, 1280), (1080, 1920))  # (H, W)
# What `--backend` names in `vidgan bench model`: load_backend keyword arguments. Every
# registered backend, the torch backend's precisions and options on CUDA, and onnxruntime's
# precisions on the CPU.
TORCH_VARIANTS = {
    "torch-fp32": {"backend": "torch", "precision": "fp32"},
    "torch-fp16": {"backend": "torch", "precision": "fp16"},
    "torch-compiled": {"backend": "torch", "compile": True},
    "torch-cudagraphs": {"backend": "torch", "cuda_graphs": True},
    "torch-compiled-cudagraphs": {"backend": "torch", "compile": True, "cuda_graphs": True},
}
ORT_CPU_VARIANTS = {
    "onnxruntime-fp32": {"backend": "onnxruntime", "precision": "fp32"},
    "onnxruntime-int8": {"backend": "onnxruntime", "precision": "int8"},
}
MODEL_VARIANTS = {**{name: {"backend": name} for name in backend_names()}, **TORCH_VARIANTS,
                  **ORT_CPU_VARIANTS}


def default_variants(device_type: str) -> list[str]:
    """What `vidgan bench model` measures by default: every backend that runs on the device, on
    CUDA with the torch variants in place of plain torch, on the CPU with onnxruntime's."""
    names = [name for name, entry in BACKENDS.items() if device_type in entry.devices]
    if device_type == "cuda":
        names = [*TORCH_VARIANTS, *(n for n in names if n != "torch")]
    else:
        names = [*(n for n in names if n != "onnxruntime"), *ORT_CPU_VARIANTS]
    return names
CPU_TARGET = {"generator": "fast", "size": "640x360", "percent_of_peak": 40.0}


def bench_model(model: str | Path | None = None, backends=None, device: str | None = None,
                sizes=MODEL_SIZES, seconds: float = 3.0, batch: int = 1, generators=None,
                out: str | Path | None = None) -> dict:
    """Model-only frames/s per backend, generator and size, beside the machine's matmul rate.

    model: a model file; None benchmarks fresh `generators` with random (seeded) weights (default:
    the registry's benched ones). backends: names from MODEL_VARIANTS (default:
    default_variants of the device); one that can't
    load here is listed as unavailable. sizes: (H, W) pairs, padded up to the model's multiple.
    The backends of one generator and size are timed in interleaved rounds, one call each per
    round plus a short matmul sample in each precision they run (peak_precision), until each
    has run `seconds`: a shared machine whose load changes affects them alike, so compare within
    a run. fps = batch / median call time (inputs already on the device; CUDA calls end with a
    synchronize); GFLOP/s = models.gflops x fps; "% peak" divides that by the median matmul
    GFLOP/s of the same rounds in the backend's own precision.
    Prints a table, writes model-<cpu|cuda>.json in `out` (see write_result), returns it.
    """

    dev = resolve_device(device)
    names = list(backends or default_variants(dev.type))
    unknown = [n for n in names if n not in MODEL_VARIANTS]
    if unknown:

        raise VidganError(f"unknown backend {unknown[0]!r} for `vidgan bench model`; choose from "
                          f"{', '.join(MODEL_VARIANTS)}")
    rows, peaks = [], {}
    with tempfile.TemporaryDirectory(prefix="vidgan-bench-") as tmp:
        generators = generators or models.generators(benched=True)
        for path in _bench_model_files(model, generators, Path(tmp)):
            rows += _bench_model_file(path, names, dev, sizes, seconds, batch, peaks)
    medians = {precision: _median(samples) for precision, samples in peaks.items()}
    _model_table(rows, dev, medians, batch)
    result = {"device": str(dev), "batch": batch, "seconds": seconds,
              "matmul_gflops_median": medians, "rows": rows}
    if dev.type == "cpu":
        result["cpu_target"] = _cpu_target(rows)
        print(result["cpu_target"]["summary"])
    result["realtime_speedup"] = _realtime_speedup(rows)
    for size, ratio in result["realtime_speedup"].items():
        print(f"realtime student at {size}: {ratio:.1f}x the fast generator's fps (best backend "
              "of each, this run; target on a CPU at 640x360: 12x)")
    write_result(f"model-{dev.type}", result, out)
    return result


def _bench_model_files(model, generators, scratch: Path) -> list[Path]:
    """The given model file, or one per generator with seeded random weights, in the shape of
    the bundled model of that architecture where one ships (else the builder's defaults).

    Those are kept in engines/ next to their cached ONNX exports: saved again, a file would get
    a new hash (safetensors orders its metadata arbitrarily) and be exported again. The name
    carries the shape, so a generator whose shape changed is benched anew.
    """

    if model is not None:
        return [resolve(model)]
    folder = engines_dir() if writable(engines_dir()) else scratch
    shipped = {info.arch: info.kwargs for info in map(read_info, (BUNDLED, REALTIME))}
    paths = []
    for name in generators:
        kwargs = shipped.get(name, models.default_kwargs(name))
        digest = hashlib.sha1(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:8]
        path = folder / f"bench-{name}-{digest}.safetensors"
        if not path.is_file():
            torch.manual_seed(0)
            save_model(path, models.build(name, **kwargs), name, kwargs)
        paths.append(path)
    return paths


def _bench_model_file(path: Path, names: list[str], dev, sizes, seconds: float, batch: int,
                      peaks: dict[str, list[float]]) -> list[dict]:
    """Rows for one model file: one per backend and size, or one per unavailable backend."""

    generator, info = load_model(path)
    label = info.arch if path.stem.startswith(f"bench-{info.arch}-") else f"{path.stem} ({info.arch})"
    loaded, rows = {}, []
    for name in names:
        try:
            loaded[name] = load_backend(path, device=str(dev), **MODEL_VARIANTS[name])
        except VidganError as exc:
            rows.append({"generator": label, "arch": info.arch, "backend": name,
                         "unavailable": exc.message})
    for h, w in sizes:
        m = info.multiple
        shape = (batch, 3, -(-h // m) * m, -(-w // m) * m)
        gflop = models.gflops(generator, *shape[2:])
        times, cell_peaks = _time_round_robin(loaded, shape, seconds, dev)
        for precision, samples in cell_peaks.items():
            peaks.setdefault(precision, []).extend(samples)
        for name, ts in times.items():
            fps = batch / _median(ts)
            precision = _precision_of(loaded[name], dev)
            peak = _median(cell_peaks[precision])
            rows.append({"generator": label, "arch": info.arch, "backend": name,
                         "name": loaded[name].name, "size": f"{w}x{h}", "input": list(shape),
                         "fps": fps, "ms_median": 1000 * _median(ts), "ms_best": 1000 * min(ts),
                         "calls": len(ts), "gflop_per_frame": gflop, "gflops": gflop * fps,
                         "peak_precision": precision, "matmul_gflops": peak,
                         "percent_of_peak": 100 * gflop * fps / peak})
    return rows


def _precision_of(backend, dev) -> str:
    return peak_precision(backend.name, dev.type, torch.backends.cudnn.allow_tf32)


def _time_round_robin(backends: dict, shape: tuple, seconds: float, dev):
    """{name: [seconds per call]} and {precision: matmul GFLOP/s samples}, from interleaved
    rounds."""

    inputs = {name: (torch.rand(shape, device=dev) * 2 - 1).to(
        b.input_dtype, memory_format=getattr(b, "memory_format", torch.contiguous_format))
        for name, b in backends.items()}
    for name, b in backends.items():  # the first call at a shape tunes, compiles or captures
        b(inputs[name])
        sync(dev)
    times = {name: [] for name in backends}
    peaks = {_precision_of(b, dev): [] for b in backends.values()}
    while True:
        for precision, samples in peaks.items():
            samples.append(matmul_gflops(seconds=0.1, device=str(dev), precision=precision))
        for name, b in backends.items():
            start = time.perf_counter()
            b(inputs[name])
            sync(dev)
            times[name].append(time.perf_counter() - start)
        if all(sum(ts) >= seconds for ts in times.values()):
            return times, peaks


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _cpu_target(rows: list[dict]) -> dict:
    """Whether the real-time generator reaches CPU_TARGET's share of the matmul peak."""
    want = CPU_TARGET
    hits = [r for r in rows if r["arch"] == want["generator"] and r.get("size") == want["size"]]
    if not hits:
        return {**want, "summary": f"cpu target: not measured (needs {want['generator']} at "
                                   f"{want['size']})"}
    best = max(hits, key=lambda r: r["percent_of_peak"])
    met = best["percent_of_peak"] >= want["percent_of_peak"]
    summary = (f"cpu target: {want['generator']} at {want['size']} through {best['name']} reaches "
               f"{best['percent_of_peak']:.0f}% of the matmul peak (target "
               f"{want['percent_of_peak']:.0f}%): {'met' if met else 'NOT met'}")
    return {**want, "best_backend": best["name"], "achieved_percent": best["percent_of_peak"],
            "met": met, "summary": summary}


def _realtime_speedup(rows: list[dict]) -> dict[str, float]:
    """{size: best realtime fps / best fast fps} for each size that has both generators, over
    the backends `auto` may run (int8 is opt-in, and refused for the bundled student)."""
    best: dict[tuple[str, str], float] = {}
    for r in rows:
        if "fps" in r and r["arch"] in ("fast", "realtime") and not r["name"].endswith("-int8"):
            key = (r["arch"], r["size"])
            best[key] = max(best.get(key, 0.0), r["fps"])
    return {size: best[("realtime", size)] / fps for (arch, size), fps in best.items()
            if arch == "fast" and ("realtime", size) in best}


def _model_table(rows: list[dict], dev, peaks: dict[str, float], batch: int) -> None:
    title = f"vidgan bench model on {dev} (batch {batch})"
    caption = None
    if peaks:
        each = ", ".join(f"{precision} {value:.0f}" for precision, value in sorted(peaks.items()))
        caption = (f"matmul peaks, GFLOP/s (median of the run): {each}; each row's % is of its "
                   "own precision's")
    table = Table("generator", "size", "backend", "fps", "ms", "GFLOP/frame", "GFLOP/s",
                  "% peak", title=title, caption=caption)
    for r in rows:
        if "unavailable" in r:
            table.add_row(r["generator"], "", r["backend"], f"unavailable: {r['unavailable']}",
                          *[""] * 4)
            continue
        table.add_row(r["generator"], r["size"], r["name"], f"{r['fps']:.2f}",
                      f"{r['ms_median']:.1f}", f"{r['gflop_per_frame']:.1f}",
                      f"{r['gflops']:.0f}", f"{r['percent_of_peak']:.0f} {r['peak_precision']}")
    console = Console()
    console.width = max(console.width, 120)  # backend names stay whole in a log file
    console.print(table)
