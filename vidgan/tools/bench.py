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


def matmul_gflops(size: int = 2048, seconds: float = 2.0, device: str = "cpu",
                  precision: str = "fp32") -> float:
    """The machine's own matmul rate in `precision` ("fp32", "tf32" or "fp16"): the peak that
    model speeds are compared with (see peak_precision). fp32 is strict: TF32 off."""
    import torch

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


def bench_train(generators=("fast", "resnet", "unet"), crops=(256, 128), batches=(1, 4),
                steps: int = 5, device: str | None = None) -> dict:
    """Training iterations/s and peak memory of one full CycleGAN step (G, F, D_Y, D_X).

    Each (generator, crop, batch) runs in a fresh process so that its peak RSS is its own; on
    CUDA the peak is torch.cuda.max_memory_allocated. Inputs are random tensors already on the
    device: this measures the models, not data loading. One warm-up step is not timed.
    `device` None: CUDA when available, else the CPU.
    Prints a table and writes benchmarks/results/train.json; returns what it wrote.
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    from vidgan.core import models
    from vidgan.core.errors import VidganError

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VidganError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    rows = []
    for name in generators:
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
    path = write_result("train", result)
    print(f"wrote {path}")
    return result


def _train_step_in_subprocess(name: str, crop: int, batch: int, steps: int, device: str) -> dict:
    import subprocess
    import sys

    spec = json.dumps({"generator": name, "crop": crop, "batch": batch, "steps": steps,
                       "device": device})
    code = "import sys; from vidgan.tools.bench import train_step_worker; train_step_worker(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, spec], check=False, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_step_worker(spec_json: str) -> None:
    """Child process of bench_train: time `steps` training steps, print one JSON line."""
    import resource

    import torch

    from vidgan.train import cyclegan as training

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
    _sync(device)
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        gan.step(x, y)
    _sync(device)
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({"it_per_s": spec["steps"] / seconds, "cuda_peak_mib": cuda_peak,
                      "rss_before_step_mib": rss_before,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_live(backends=None, heights=(360, 720), clip: str | Path | None = None,
               seconds: float = 10.0, model: str | Path | None = None, device: str | None = None,
               precision: str = "auto") -> dict:
    """Capture-to-display latency (p50/p95) and fps of `vidgan live`, headless, per backend and
    processing height, from a video file played as live at its own frame rate.

    clip: default a generated 1280x720 20 fps clip (the README's table played the data set's
    cockatoo_yuv420.mp4, a 1280x720 20 fps clip, with --clip). Target on a GPU: p95 latency under two frame intervals of the source at 720p.
    Prints a table and writes benchmarks/results/live-<cpu|cuda>.json; returns what it wrote.
    """
    import io

    import torch

    from vidgan.runtime.backends import BACKENDS, load_backend
    from vidgan.core.errors import VidganError
    from vidgan.pipelines.live import run_live
    from vidgan.pipelines.live.sources import FileSource

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    clip = Path(clip) if clip else _live_clip()
    rows = []
    for name in backends or [b for b in BACKENDS if b != "auto"]:
        try:
            backend = load_backend(model, name, device, precision)
        except VidganError as exc:
            rows.append({"backend": name, "unavailable": exc.message})
            continue
        for height in heights:
            source = FileSource(clip)
            stats = run_live(source, backend=backend, height=height, window=False,
                             duration=seconds, stats_every=None, log=io.StringIO())
            target, p95 = 2000 / float(source.rate), stats.latency_ms()[1]
            rows.append({**stats.as_dict(), "height": height, "source_fps": float(source.rate),
                         "target_p95_ms": round(target, 1),
                         "meets_target": p95 is not None and p95 < target})
    _live_table(rows, clip, device)
    result = {"device": device, "clip": clip.name, "seconds": seconds, "rows": rows}
    path = write_result(f"live-{torch.device(device).type}", result)
    print(f"wrote {path}")
    return result


def _live_table(rows: list[dict], clip: Path, device: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("backend", "size", "fps (source)", "latency p50/p95 ms", "p95 target",
                  "dropped", title=f"vidgan live from {clip.name} on {device}")
    for r in rows:
        if "unavailable" not in r:
            h, w = r["processing"]
            table.add_row(r["backend"], f"{w}x{h}", f"{r['fps']:.1f} ({r['source_fps']:.0f})",
                          " / ".join("-" if r[k] is None else f"{r[k]:.0f}"
                                     for k in ("latency_p50_ms", "latency_p95_ms")),
                          f"{r['target_p95_ms']:.0f}" + ("" if r["meets_target"] else " missed"),
                          f"{r['dropped']}/{r['captured']}")
    Console(width=100).print(table)
    for r in rows:
        if "unavailable" in r:
            print(f"{r['backend']}: unavailable: {r['unavailable']}")


def _live_clip() -> Path:
    """A 10 s 1280x720 20 fps clip with moving content, in a temporary folder."""
    import tempfile
    from fractions import Fraction

    import numpy as np

    from vidgan.runtime.video import VideoWriter

    path = Path(tempfile.mkdtemp(prefix="vidgan-bench-")) / "live-720p.mp4"
    yy, xx = np.mgrid[0:720, 0:1280]
    base = np.stack([xx * 255 // 1280, yy * 255 // 720, np.full_like(xx, 96)], -1).astype(np.uint8)
    with VideoWriter(path, 1280, 720, Fraction(20)) as out:
        for i in range(200):
            frame = base.copy()
            x = 40 + 5 * i
            frame[200:360, x:x + 160] = (250, 240, 60)
            out.write(frame)
    return path


# --- vidgan bench model ------------------------------------------------------------------------

MODEL_SIZES = ((256, 256), (360, 640), (720, 1280), (1080, 1920))  # (H, W)
# What `--backend` names in `vidgan bench model`: load_backend keyword arguments.
MODEL_VARIANTS = {
    "torch": {"backend": "torch"},
    "torch-fp32": {"backend": "torch", "precision": "fp32"},
    "torch-fp16": {"backend": "torch", "precision": "fp16"},
    "torch-compiled": {"backend": "torch", "compile": True},
    "torch-cudagraphs": {"backend": "torch", "cuda_graphs": True},
    "torch-compiled-cudagraphs": {"backend": "torch", "compile": True, "cuda_graphs": True},
    "onnxruntime": {"backend": "onnxruntime"},
    "tensorrt": {"backend": "tensorrt"},
    "auto": {"backend": "auto"},
}
MODEL_DEFAULTS = {
    "cpu": ("torch", "onnxruntime"),
    "cuda": ("torch-fp32", "torch-fp16", "torch-compiled", "torch-cudagraphs",
             "torch-compiled-cudagraphs", "onnxruntime", "tensorrt"),
}
CPU_TARGET = {"generator": "fast", "size": "640x360", "percent_of_peak": 40.0}


def bench_model(model: str | Path | None = None, backends=None, device: str | None = None,
                sizes=MODEL_SIZES, seconds: float = 3.0, batch: int = 1,
                generators=("fast", "resnet", "realtime")) -> dict:
    """Model-only frames/s per backend, generator and size, beside the machine's matmul rate.

    model: a model file; None benchmarks fresh `generators` with random (seeded) weights.
    backends: names from MODEL_VARIANTS (default MODEL_DEFAULTS of the device); one that can't
    load here is listed as unavailable. sizes: (H, W) pairs, padded up to the model's multiple.
    The backends of one generator and size are timed in interleaved rounds, one call each per
    round plus a short matmul sample in each precision they run (peak_precision), until each
    has run `seconds`: a shared machine whose load changes affects them alike, so compare within
    a run. fps = batch / median call time (inputs already on the device; CUDA calls end with a
    synchronize); GFLOP/s = models.gflops x fps; "% peak" divides that by the median matmul
    GFLOP/s of the same rounds in the backend's own precision.
    Prints a table, writes benchmarks/results/model-<cpu|cuda>.json and returns what it wrote.
    """
    import tempfile

    from vidgan.core.device import resolve_device

    dev = resolve_device(device)
    names = list(backends or MODEL_DEFAULTS[dev.type])
    unknown = [n for n in names if n not in MODEL_VARIANTS]
    if unknown:
        from vidgan.core.errors import VidganError

        raise VidganError(f"unknown backend {unknown[0]!r} for `vidgan bench model`; choose from "
                          f"{', '.join(MODEL_VARIANTS)}")
    rows, peaks = [], {}
    with tempfile.TemporaryDirectory(prefix="vidgan-bench-") as tmp:
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
    path = write_result(f"model-{dev.type}", result)
    print(f"wrote {path}")
    return result


def _bench_model_files(model, generators, scratch: Path) -> list[Path]:
    """The given model file, or one per generator with seeded random weights.

    Those are kept in engines/ next to their cached ONNX exports: saved again, a file would get
    a new hash (safetensors orders its metadata arbitrarily) and be exported again.
    """
    import torch

    from vidgan.core import models
    from vidgan.runtime.backends.ort_backend import writable
    from vidgan.core.cache import engines_dir
    from vidgan.core.modelfile import resolve, save_model

    if model is not None:
        return [resolve(model)]
    folder = engines_dir() if writable(engines_dir()) else scratch
    paths = []
    for name in generators:
        path = folder / f"bench-{name}.safetensors"
        if not path.is_file():
            torch.manual_seed(0)
            save_model(path, models.build(name), name, {})
        paths.append(path)
    return paths


def _bench_model_file(path: Path, names: list[str], dev, sizes, seconds: float, batch: int,
                      peaks: dict[str, list[float]]) -> list[dict]:
    """Rows for one model file: one per backend and size, or one per unavailable backend."""
    from vidgan.core import models
    from vidgan.runtime.backends import load_backend
    from vidgan.core.errors import VidganError
    from vidgan.core.modelfile import load_model

    generator, info = load_model(path)
    label = info.arch if path.stem == f"bench-{info.arch}" else f"{path.stem} ({info.arch})"
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
    import torch

    return peak_precision(backend.name, dev.type, torch.backends.cudnn.allow_tf32)


def _time_round_robin(backends: dict, shape: tuple, seconds: float, dev):
    """{name: [seconds per call]} and {precision: matmul GFLOP/s samples}, from interleaved
    rounds."""
    import torch

    inputs = {name: (torch.rand(shape, device=dev) * 2 - 1).to(
        b.input_dtype, memory_format=getattr(b, "memory_format", torch.contiguous_format))
        for name, b in backends.items()}
    for name, b in backends.items():  # the first call at a shape tunes, compiles or captures
        b(inputs[name])
        _sync(dev)
    times = {name: [] for name in backends}
    peaks = {_precision_of(b, dev): [] for b in backends.values()}
    while True:
        for precision, samples in peaks.items():
            samples.append(matmul_gflops(seconds=0.1, device=str(dev), precision=precision))
        for name, b in backends.items():
            start = time.perf_counter()
            b(inputs[name])
            _sync(dev)
            times[name].append(time.perf_counter() - start)
        if all(sum(ts) >= seconds for ts in times.values()):
            return times, peaks


def _median(values: list[float]) -> float:
    import statistics

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
    """{size: best realtime fps / best fast fps} for each size that has both generators."""
    best: dict[tuple[str, str], float] = {}
    for r in rows:
        if "fps" in r and r["arch"] in ("fast", "realtime"):
            key = (r["arch"], r["size"])
            best[key] = max(best.get(key, 0.0), r["fps"])
    return {size: best[("realtime", size)] / fps for (arch, size), fps in best.items()
            if arch == "fast" and ("realtime", size) in best}


def _model_table(rows: list[dict], dev, peaks: dict[str, float], batch: int) -> None:
    from rich.console import Console
    from rich.table import Table

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


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"640x360,1280x720" (width x height) -> [(360, 640), (720, 1280)] as (H, W)."""
    from vidgan.core.errors import VidganError

    sizes = []
    for item in text.replace(" ", "").split(","):
        w, _, h = item.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise VidganError(f"--sizes takes WIDTHxHEIGHT items separated by commas, not {item!r}")
        sizes.append((int(h), int(w)))
    return sizes


# --- vidgan bench render -----------------------------------------------------------------------

RENDER_TARGETS = {"overhead": 0.8, "overlap": 0.85, "memory": 1.2}


class IdentityBackend:
    """A backend whose model returns its input: what the pipeline costs around the model."""

    name, model_name, multiple = "identity", "identity", 1

    def __init__(self, device="cpu"):
        import torch

        self.device = torch.device(device)
        self.input_dtype = torch.float32

    def __call__(self, x):
        return x


def bench_render(model: str | Path | None = None, backends=None, device: str | None = None,
                 clip: str | Path | None = None, heights=None, seconds: float = 5.0,
                 batch: int = 1, memory_seconds=(1.0, 30.0)) -> dict:
    """The render pipeline against its parts, as ratios measured in one run.

    overhead: render with IdentityBackend vs a bare PyAV decode -> encode loop (the same
        `seconds` of `clip`, libx264 veryfast crf 18): target >= 0.8 (at 720p).
    overlap: render fps vs model-only fps (the backend alone on a batch of the processing
        size, like `bench model`) per backend and processing height; meaningful where the
        model is the bottleneck (slower than the bare codec loop): target >= 0.85.
    memory: peak RSS of rendering generated clips of `memory_seconds` (fresh processes,
        IdentityBackend, with AAC audio): the longest within 1.2x of the shortest.
    clip: default a generated 720p clip (the README's table: --clip cockatoo_yuv420.mp4). model: a model
    file (default: the bundled one, else a fresh `fast` generator: speed needs no training).
    heights: processing heights (default 360 on the CPU, the clip's own on CUDA).
    Prints a table, writes benchmarks/results/render.json and returns what it wrote.
    """
    import tempfile

    from vidgan.runtime import video
    from vidgan.core.device import resolve_device

    dev = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="vidgan-bench-") as tmp:
        tmp = Path(tmp)
        clip = Path(clip) if clip else _live_clip()
        info = video.probe(clip)
        heights = list(heights or ([360] if dev.type == "cpu" else [info.height]))
        frames = max(1, round(seconds * float(info.rate)))
        bare = _bare_codec_fps(clip, frames)
        ident = _render_fps(clip, tmp, IdentityBackend(dev), seconds, batch)
        overhead = {"bare_fps": bare, "render_fps": ident, "ratio": ident / bare,
                    "size": f"{info.width}x{info.height}", "frames": frames}
        path = _bench_render_model(model, tmp)
        overlap = [_overlap_row(clip, tmp, path, name, dev, h, seconds, batch, bare)
                   for name in (backends or ["auto"]) for h in heights]
        memory = _render_memory(tmp, memory_seconds)
    result = {"device": str(dev), "clip": clip.name, "seconds": seconds, "batch": batch,
              "targets": RENDER_TARGETS, "overhead": overhead, "overlap": overlap,
              "memory": memory}
    _render_table(result)
    out = write_result("render", result)
    print(f"wrote {out}")
    return result


def _bare_codec_fps(clip: Path, frames: int) -> float:
    """PyAV alone: decode `frames` frames and encode them as render does (no RGB, no model)."""
    import os
    import tempfile

    import av

    fd, name = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    start = time.perf_counter()
    with av.open(str(clip)) as src, av.open(name, "w") as out:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate,
                              options={"crf": "18", "preset": "veryfast"})
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.time_base = vout.codec_context.time_base = vin.time_base
        n = 0
        for frame in src.decode(vin):
            out.mux(vout.encode(frame))
            n += 1
            if n == frames:
                break
        out.mux(vout.encode(None))
    seconds = time.perf_counter() - start
    os.unlink(name)
    return n / seconds


def _render_fps(clip: Path, tmp: Path, backend, seconds: float, batch: int,
                height: int | None = None) -> float:
    from vidgan.pipelines.render import render_video

    result = render_video(clip, tmp / "render.mp4", backend=backend, height=height,
                          duration=seconds, batch_size=batch, overwrite=True, progress=False)
    return result.fps


def _bench_render_model(model, tmp: Path) -> Path:
    from vidgan.core import models
    from vidgan.core.modelfile import BUNDLED, resolve, save_model

    if model is not None or BUNDLED.exists():
        return resolve(model)
    return save_model(tmp / "bench-fast.safetensors", models.build("fast"), "fast", {})


def _overlap_row(clip: Path, tmp: Path, model: Path, name: str, dev, height: int,
                 seconds: float, batch: int, bare: float) -> dict:
    """Model-only fps (before and after the render, averaged) against render fps."""
    import torch

    from vidgan.runtime import frames
    from vidgan.runtime import video
    from vidgan.runtime.backends import load_backend
    from vidgan.core.errors import VidganError

    try:
        backend = load_backend(model, name, str(dev))
    except VidganError as exc:
        return {"backend": name, "height": height, "unavailable": exc.message}
    info = video.probe(clip)
    h, w = frames.processing_size(info.height, info.width, height)
    m = backend.multiple
    x = torch.rand(batch, 3, -(-h // m) * m, -(-w // m) * m, device=dev).mul_(2).sub_(1)
    x = x.to(backend.input_dtype)
    before = _model_fps(backend, x, dev)
    render = _render_fps(clip, tmp, backend, seconds, batch, height)
    model_fps = (before + _model_fps(backend, x, dev)) / 2
    return {"backend": backend.name, "height": height, "size": f"{w}x{h}",
            "model_fps": model_fps, "render_fps": render, "ratio": render / model_fps,
            "model_bound": model_fps < bare}


def _model_fps(backend, x, dev, seconds: float = 2.0) -> float:
    backend(x)  # the first call at a shape tunes, compiles or captures
    _sync(dev)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        backend(x)
        calls += 1
    _sync(dev)
    return calls * len(x) / (time.perf_counter() - start)


def _render_memory(tmp: Path, lengths) -> dict:
    import subprocess
    import sys

    rows = []
    for seconds in lengths:
        clip = _synthetic_clip(tmp / f"memory-{seconds:g}s.mp4", seconds)
        code = ("import sys; from vidgan.tools.bench import render_memory_worker; "
                "render_memory_worker(sys.argv[1], sys.argv[2])")
        proc = subprocess.run([sys.executable, "-c", code, str(clip), str(tmp / "memory-out.mp4")],
                              check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        rows.append({"seconds": seconds, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return {"runs": rows, "ratio": rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]}


def render_memory_worker(clip: str, out: str) -> None:
    """Child process of bench_render: render `clip` with IdentityBackend, print peak RSS JSON."""
    import resource

    from vidgan.pipelines.render import render_video

    result = render_video(clip, out, backend=IdentityBackend(), overwrite=True, progress=False)
    print(json.dumps({"frames": result.frames,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _synthetic_clip(path: Path, seconds: float, width: int = 640, height: int = 360,
                    fps: int = 30) -> Path:
    """Moving content with a 440 Hz AAC tone, so that the audio path is measured too."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 96)], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(round(seconds * fps)):
            frame = base.copy()
            x = (5 * i) % (width - 64)
            frame[100:164, x:x + 64] = (250, 240, 60)
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))
        t = np.arange(round(seconds * 48000)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, i:i + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, i
            out.mux(a.encode(chunk))
        out.mux(a.encode(None))
    return path


def _render_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = RENDER_TARGETS
    table = Table("measure", "setting", "fps / MiB", "against", "ratio", "target",
                  title=f"vidgan bench render on {result['device']} ({result['clip']})")
    o = result["overhead"]
    table.add_row("overhead", f"identity model, {o['size']}", f"{o['render_fps']:.1f}",
                  f"bare PyAV {o['bare_fps']:.1f}", f"{o['ratio']:.2f}", _verdict(o["ratio"] >= t["overhead"], f">= {t['overhead']}"))
    for r in result["overlap"]:
        if "unavailable" in r:
            table.add_row("overlap", r["backend"], f"unavailable: {r['unavailable']}", "", "", "")
            continue
        note = "" if r["model_bound"] else " (model not the bottleneck)"
        table.add_row("overlap", f"{r['backend']} at {r['size']}", f"{r['render_fps']:.2f}",
                      f"model only {r['model_fps']:.2f}", f"{r['ratio']:.2f}",
                      _verdict(r["ratio"] >= t["overlap"], f">= {t['overlap']}") + note)
    m = result["memory"]
    if "error" in m:
        table.add_row("memory", "failed", m["error"], "", "", "")
    else:
        first, last = m["runs"][0], m["runs"][-1]
        table.add_row("memory", f"{last['seconds']:g} s clip vs {first['seconds']:g} s",
                      f"{last['peak_rss_mib']:.0f}", f"{first['peak_rss_mib']:.0f}",
                      f"{m['ratio']:.2f}", _verdict(m["ratio"] <= t["memory"], f"<= {t['memory']}"))
    Console().print(table)


def _verdict(met: bool, target: str) -> str:
    return f"{target}: {'met' if met else 'NOT met'}"


BENCHES = ("model", "render", "live", "train")


def run_bench(what: str, **options) -> dict:
    """`vidgan bench WHAT`: bench_WHAT with the options given (None: its default).

    An option that bench doesn't take is a user error, not a silent no-op.
    """
    import inspect

    from vidgan.core.errors import VidganError

    if what not in BENCHES:
        raise VidganError(f"unknown benchmark {what!r}; choose one of: {', '.join(BENCHES)}")
    bench = globals().get(f"bench_{what}")
    if bench is None:
        raise VidganError(f"`vidgan bench {what}` is not in this version of vidgan")
    given = {k: v for k, v in options.items() if v not in (None, [], ())}
    takes = inspect.signature(bench).parameters
    extra = [k for k in given if k not in takes]
    if extra:
        flag = {"backends": "backend", "generators": "generator", "heights": "height"}.get(
            extra[0], extra[0]).replace("_", "-")
        raise VidganError(f"`vidgan bench {what}` does not take --{flag}")
    return bench(**given)
