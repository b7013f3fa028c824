"""One GPU check, through vidgan's own code paths; gpu_check.sh runs it. Writes one JSON.

Every row is measured or says why not (a missing TensorRT, onnxruntime-gpu, PyAV, safetensors or
compiler for torch.compile, a spent time budget); nothing aborts the run.

  model   the `fast`, `resnet` and real-time (`realtime`, where this vidgan has it) generators
          at 720p and 1080p through vidgan.runtime.backends.load_backend: torch fp32 (TF32 off,
          cudnn.benchmark on), torch fp16, torch compiled fp16, torch fp16 with CUDA graphs,
          onnxruntime CUDA (the fp16 graph) and TensorRT FP16; frames/s, TFLOP/s, % of the
          measured matmul peak of the row's precision, PSNR against the fp32 row
  render  vidgan.pipelines.render.render_video of a generated 1080p clip with the `auto` backend: frames/s,
          the share of the wall time the GPU spent in the model, the codec alone for comparison
  live    vidgan.pipelines.live.run_live from a generated 720p clip played as live (headless): frames/s,
          capture-to-display latency p50/p95
  train   vidgan.train.cyclegan.train of the resnet recipe at crop 256 on generated images: steps/s,
          peak GPU memory, the autocast dtype; then a --resume of it

`--cpu` rehearses all of it on the CPU at tiny sizes in seconds (the test suite does).
The JSON goes to $OUT when set, else to --out (default runs/gpu-check/, which git ignores).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from fractions import Fraction
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
from vidgan.core import models

GENERATORS = models.generators(benched=True)  # the registry's: fast, resnet, realtime
# row label -> load_backend keyword arguments (device added)
VARIANTS = {
    "torch fp32": {"backend": "torch", "precision": "fp32"},
    "torch fp16": {"backend": "torch", "precision": "fp16"},
    "torch compiled": {"backend": "torch", "precision": "fp16", "compile": True},
    "torch CUDA graphs": {"backend": "torch", "precision": "fp16", "cuda_graphs": True},
    "onnxruntime CUDA": {"backend": "onnxruntime", "precision": "fp16"},
    "TensorRT FP16": {"backend": "tensorrt"},
}
COMPILE_SECONDS = 90  # a torch.compile'd generator's first call at one size, about
BUILD_SECONDS = 150  # a TensorRT engine build with a profile spanning 720p..1080p, about
TARGETS = {"vs_torch_fp16": 2.0, "vs_torch_fp32": 4.0, "pct_peak": 35.0}  # TensorRT, resnet 720p


class Check:
    """The settings of one run, its scratch folder and its time budget."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.cpu = args.cpu
        self.device = torch.device("cpu" if args.cpu else "cuda")
        self.sizes = [(32, 48)] if args.cpu else [(720, 1280), (1080, 1920)]
        self.seconds = args.seconds or (0.05 if args.cpu else 1.5)
        self.budget = args.budget
        self.work = work
        self.threads = torch.get_num_threads()
        self.started = time.monotonic()

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def no_time(self, need: float) -> str | None:
        if self.left() >= need:
            return None
        return f"skipped: the run's time budget ({self.budget:.0f} s) is spent"

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to PyTorch; --cpu rehearses the check on the CPU",
              file=sys.stderr)
        return 2
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(args.out)
    with tempfile.TemporaryDirectory(prefix="vidgan-gpu-check-") as tmp, _engines_in(Path(tmp)):
        check = Check(args, Path(tmp))
        report = {"mode": "cpu rehearsal" if check.cpu else "gpu", "machine": machine(check),
                  "versions": versions(), "budget_s": check.budget,
                  "seconds_per_row": check.seconds}
        report["matmul_tflops"] = peaks(check)
        report["rows"] = run_rows(check, report["matmul_tflops"])
        report["targets"] = targets(report["rows"], report["matmul_tflops"], check.sizes[0])
        report["seconds"] = round(time.monotonic() - check.started, 1)
    path = write(report, folder)
    print_summary(report)
    print(f"wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="rehearse on the CPU at tiny sizes")
    p.add_argument("--out", default=str(ROOT / "runs" / "gpu-check"),
                   help="folder for the JSON when $OUT is not set (default: runs/gpu-check)")
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per model row")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for the whole check; rows past it say so (default 420)")
    return p.parse_args(argv)


@contextlib.contextmanager
def _engines_in(work: Path):
    """ONNX exports and engines of this check go to its scratch folder, not engines/."""
    before = os.environ.get("VIDGAN_ENGINES")
    os.environ["VIDGAN_ENGINES"] = str(work / "engines")
    try:
        yield
    finally:
        if before is None:
            del os.environ["VIDGAN_ENGINES"]
        else:
            os.environ["VIDGAN_ENGINES"] = before


# --- machine and versions ---------------------------------------------------------------------

def machine(check: Check) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "device": str(check.device)}
    if check.device.type == "cuda":
        p = torch.cuda.get_device_properties(check.device)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    compute_capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count)
    return info


def versions() -> dict:
    from importlib import metadata

    import vidgan

    found = {"vidgan": vidgan.__version__, "torch": torch.__version__,
             "torch_cuda": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for name in ("onnxruntime", "onnxruntime-gpu", "tensorrt-cu13",
                 "tensorrt-cu12", "tensorrt", "onnx", "onnxconverter-common", "safetensors", "av",
                 "triton", "numpy", "opencv-python", "opencv-python-headless"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    with contextlib.suppress(ImportError):
        import onnxruntime

        found["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return found


def peaks(check: Check) -> dict:
    """Matmul TFLOP/s per precision, the yardstick of each model row's % of peak."""
    from vidgan.tools.bench.results import matmul_gflops

    size, precisions = (512, ["fp32"]) if check.cpu else (8192, ["fp16", "fp32"])
    return {p: _sig(matmul_gflops(size, 0.2 if check.cpu else 1.0, str(check.device), p) / 1e3)
            for p in precisions}


def _sig(value: float) -> float:
    """Four significant digits: a tiny CPU rehearsal's TFLOP/s are not rounded to zero."""
    return float(f"{value:.4g}")


# --- rows -------------------------------------------------------------------------------------

def run_rows(check: Check, peak: dict) -> list[dict]:
    """Every row, in report order; measured cheapest first, the torch.compile rows last."""
    model_rows = [{"section": "model", "generator": g, "backend": v, "size": f"{w}x{h}"}
                  for g in GENERATORS for h, w in check.sizes for v in VARIANTS]
    others = [{"section": "render", "backend": "auto", "size": "64x48" if check.cpu else "1920x1080"},
              {"section": "live", "backend": "auto", "size": "64x48" if check.cpu else "1280x720"},
              *({"section": "train", "generator": "resnet", "backend": backend,
                 "size": "crop 32" if check.cpu else "crop 256"}
                for backend in ("train", "train --resume"))]
    sections = []
    for generator in GENERATORS:
        rows = [r for r in model_rows if r["generator"] == generator]
        path = attempt_model_file(check, generator, rows)
        if path is not None:
            with attempt(*rows):
                sections.append(GeneratorRows(check, path, rows, peak))
    for section in sections:
        for variant in VARIANTS:
            if variant != "torch compiled":
                section.measure(variant)
    render_row(check, others[0])
    live_row(check, others[1])
    train_rows(check, others[2], others[3])
    for section in sections:  # last: each first call compiles for a minute or more
        section.measure("torch compiled")
    for row in model_rows + others:
        row.setdefault("status", "not measured")
        if row["status"] != "ok":
            row.setdefault("reason", "not reached")
    return model_rows + others


@contextlib.contextmanager
def attempt(*rows: dict):
    """Fill `rows` inside; any failure becomes their reason instead of ending the check."""
    from vidgan.core.errors import VidganError

    try:
        yield
    except ImportError as exc:
        module = (exc.name or str(exc)).partition(".")[0]
        _fail(rows, f"needs {module} (not installed; gpu_check.sh installs benchmarks/wheels/ "
                    "when present, see `make gpu-wheels`)")
    except VidganError as exc:
        _fail(rows, exc.message)
    except Exception as exc:  # noqa: BLE001 - the report says what failed and the check goes on
        traceback.print_exc()
        _fail(rows, f"error: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")


def _fail(rows, reason: str) -> None:
    for row in rows:
        if row.get("status") != "ok":
            row.update(status="not measured", reason=reason)


def attempt_model_file(check: Check, generator: str, rows: list[dict]) -> Path | None:
    """A model file with seeded random weights (speed does not depend on them), or None."""
    if generator not in models.REGISTRY:
        _fail(rows, f"not in this version of vidgan (models.REGISTRY has no {generator!r})")
        return None
    path = None
    with attempt(*rows):
        from vidgan.core.modelfile import save_model

        kwargs = {"ngf": 4, "n_blocks": 1} if check.cpu and generator != "realtime" else {}
        torch.manual_seed(0)
        path = save_model(check.work / f"{generator}.safetensors", models.build(generator, **kwargs),
                          generator, kwargs)
    return path


class GeneratorRows:
    """The model rows of one generator: its model file, an input per size and its FLOPs, and
    the fp32 row's outputs that the other rows' accuracy is measured against."""

    def __init__(self, check: Check, path: Path, rows: list[dict], peak: dict):
        from vidgan.core.modelfile import load_model
        from vidgan.core.models import gflops

        self.check, self.path, self.peak = check, path, peak
        self.rows = {(r["backend"], r["size"]): r for r in rows}
        net, info = load_model(path)
        m = info.multiple
        self.shapes = [(1, -(-h // m) * m, -(-w // m) * m) for h, w in check.sizes]
        seeded = torch.Generator().manual_seed(0)
        self.inputs = {f"{w}x{h}": torch.rand(1, 3, ph, pw, generator=seeded) * 2 - 1
                       for (h, w), (_, ph, pw) in zip(check.sizes, self.shapes)}
        self.gflop = {size: gflops(net, *x.shape[2:]) for size, x in self.inputs.items()}
        self.reference: dict[str, torch.Tensor] = {}

    def measure(self, variant: str) -> None:
        """Load `variant` once through load_backend, then time it at each size (a row each)."""
        check = self.check
        rows = [self.rows[(variant, size)] for size in self.inputs]
        need = COMPILE_SECONDS if variant == "torch compiled" else 4 * check.seconds  # per size
        first = BUILD_SECONDS if variant == "TensorRT FP16" else need
        why = unavailable(check, variant) or check.no_time(first)
        if why is not None:
            _fail(rows, why)
            return
        with attempt(*rows), _strict_fp32(variant == "torch fp32"):
            from vidgan.runtime.backends import load_backend

            if variant == "TensorRT FP16":
                build_engine(self.path, self.shapes)
            options = dict(VARIANTS[variant])
            if check.cpu and variant == "onnxruntime CUDA":
                options["precision"] = "fp32"  # the rehearsal runs the CPU provider
                for row in rows:
                    row["note"] = "--cpu rehearsal: onnxruntime's CPU provider"
            backend = load_backend(self.path, device=str(check.device), shapes=self.shapes,
                                   **options)
            if check.cpu:
                # torch's CPU backend takes every core; the rehearsal (in the test suite, on a
                # shared machine) keeps the threads it was given: its speeds mean nothing anyway
                torch.set_num_threads(check.threads)
            for row in rows:
                if (why := check.no_time(need)) is not None:
                    _fail([row], why)
                    continue
                with attempt(row):
                    self._measure_row(backend, variant, row)

    def _measure_row(self, backend, variant: str, row: dict) -> None:
        from vidgan.runtime.export.verify import psnr

        size = row["size"]
        out = measure(self.check, backend, self.inputs[size], self.gflop[size], row, self.peak)
        if variant == "torch fp32":
            self.reference[size] = out
        if size in self.reference:
            row["psnr_db_vs_fp32"] = round(psnr(out, self.reference[size]), 1)


def unavailable(check: Check, variant: str) -> str | None:
    """Why a variant can't run on this machine at all, or None."""
    from vidgan.runtime.export.engines import missing_requirements

    if check.cpu and variant in ("torch fp16", "torch CUDA graphs"):
        return "needs a CUDA GPU (--cpu rehearsal)"
    if check.cpu and variant == "torch compiled":
        return "--cpu rehearsal: torch.compile's first call alone takes minutes on a CPU"
    if variant == "torch compiled" and importlib.util.find_spec("triton") is None:
        return "torch.compile needs Triton for CUDA kernels, and it is not installed"
    if variant == "TensorRT FP16":
        return missing_requirements()
    if variant == "onnxruntime CUDA" and not check.cpu:
        import onnxruntime

        from vidgan.runtime.backends.ort_backend import GPU_HINT

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return f"onnxruntime has no CUDA provider here: {GPU_HINT}"
    return None


@contextlib.contextmanager
def _strict_fp32(on: bool):
    """TF32 off for the fp32 row: its convolutions and matmuls in real fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if on:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def build_engine(path: Path, shapes: list) -> None:
    """A TensorRT FP16 engine of `path` whose profile spans the check's sizes, in engines/."""
    from vidgan.runtime.export_model import export_model

    low, high = min(shapes), max(shapes)
    export_model(path, fp16=True, min_shape=(low[1], low[2]), opt_shape=(shapes[0][1], shapes[0][2]),
                 max_shape=(high[1], high[2]), opt_level=2, log=lambda line: print(line, flush=True))


def measure(check: Check, backend, x: torch.Tensor, gflop: float, row: dict,
            peak: dict) -> torch.Tensor:
    """Fill `row` with the frames/s of `backend` on x (batch 1) and its share of the matmul peak
    of its precision; return its output (on the CPU, as float32) for the accuracy column."""
    from vidgan.tools.bench.results import peak_precision

    x = x.to(check.device, backend.input_dtype).contiguous(
        memory_format=getattr(backend, "memory_format", torch.contiguous_format))
    began = time.perf_counter()
    out = backend(x)  # the first call at a shape tunes, compiles or captures
    check.sync()
    first = time.perf_counter() - began
    calls, began = 0, time.perf_counter()
    while True:
        backend(x)
        calls += 1
        if calls % 4 == 0:
            check.sync()
            if time.perf_counter() - began >= check.seconds:
                break
    fps = calls / (time.perf_counter() - began)
    precision = peak_precision(backend.name, check.device.type, torch.backends.cudnn.allow_tf32)
    tflops = fps * gflop / 1e3
    row.update(status="ok", name=backend.name, input=list(x.shape), fps=round(fps, 2),
               ms_per_frame=round(1000 / fps, 3), first_call_s=round(first, 2),
               gflop_per_frame=_sig(gflop), tflops=_sig(tflops), peak_precision=precision)
    if peak.get(precision):
        row["percent_of_peak"] = _sig(100 * tflops / peak[precision])
    return out.float().cpu()


class BusyMeter:
    """A backend that also adds up the time the device spends in the wrapped one's calls.

    On CUDA the time between CUDA events recorded around each call (read after the run); on
    the CPU, where a call completes before it returns, the call's own time.
    """

    def __init__(self, backend):
        self.backend = backend
        self.name, self.device, self.multiple = backend.name, backend.device, backend.multiple
        self.model_name = backend.model_name
        self.input_dtype = backend.input_dtype
        self.memory_format = getattr(backend, "memory_format", torch.contiguous_format)
        self.events: list = []
        self.cpu_seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cuda":
            began = time.perf_counter()
            out = self.backend(x)
            self.cpu_seconds += time.perf_counter() - began
            return out
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = self.backend(x)
        end.record()
        self.events.append((start, end))
        return out

    def busy_seconds(self) -> float:
        if self.device.type != "cuda":
            return self.cpu_seconds
        torch.cuda.synchronize(self.device)
        return sum(s.elapsed_time(e) for s, e in self.events) / 1000


def make_clip(path: Path, width: int, height: int, rate: int, frames: int) -> Path:
    """A clip with moving content through vidgan's own writer (so it needs PyAV too)."""
    import numpy as np

    from vidgan.runtime.video import VideoWriter

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 96)], -1).astype(np.uint8)
    side = max(8, height // 5)
    with VideoWriter(path, width, height, Fraction(rate), preset="ultrafast") as out:
        for i in range(frames):
            frame = base.copy()
            x = (7 * i) % max(1, width - side)
            frame[height // 3:height // 3 + side, x:x + side] = (250, 240, 60)
            out.write(frame)
    return path


def _auto_backend(check: Check, height: int, width: int):
    """The bundled model behind `auto`, as `vidgan render` and `vidgan live` get it, warmed up
    at the processing size. The rehearsal takes its tiny `fast` model (already exported)."""
    from vidgan.runtime.backends import load_backend
    from vidgan.runtime.stylizer import Stylizer

    model = check.work / "fast.safetensors" if check.cpu else None
    backend = load_backend(model, "auto", str(check.device), shapes=[(1, height, width)])
    Stylizer(backend)(torch.zeros(1, height, width, 3, dtype=torch.uint8))  # tune, capture
    check.sync()
    return backend


def render_row(check: Check, row: dict) -> None:
    width, height = (64, 48) if check.cpu else (1920, 1080)
    frames = 12 if check.cpu else 120
    if (why := check.no_time(30)) is not None:
        _fail([row], why)
        return
    with attempt(row):
        from vidgan.pipelines.render import render_video
        from vidgan.runtime.stylizer import Stylizer
        from vidgan.tools.bench.render import _bare_codec_fps

        clip = make_clip(check.work / "render-in.mp4", width, height, 30, frames)
        codec = _bare_codec_fps(clip, frames)
        meter = BusyMeter(_auto_backend(check, height, width))
        result = render_video(clip, check.work / "render-out.mp4", Stylizer(meter),
                              progress=False, overwrite=True)
        busy = meter.busy_seconds() / result.seconds
        row.update(status="ok", name=meter.name, frames=result.frames, fps=round(result.fps, 2),
                   model_busy_fraction=round(busy, 3), codec_only_fps=round(codec, 2),
                   verdict=_render_verdict(busy, result.fps, codec))


def _render_verdict(busy: float, fps: float, codec: float) -> str:
    if busy >= 0.9:
        return "the model is the bottleneck: the device is busy in it nearly all the time"
    if fps >= 0.85 * codec:
        return (f"waits for decode/encode: the model is busy {100 * busy:.0f}% of the time and the "
                f"codec alone runs at {codec:.0f} fps")
    return (f"neither the model ({100 * busy:.0f}% busy) nor the codec alone ({codec:.0f} fps) "
            "explains the rate: the pipeline around them (copies, conversions) costs the rest")


def live_row(check: Check, row: dict) -> None:
    width, height, rate = (64, 48, 12) if check.cpu else (1280, 720, 30)
    seconds = 1.0 if check.cpu else 6.0
    if (why := check.no_time(seconds + 20)) is not None:
        _fail([row], why)
        return
    with attempt(row):
        from vidgan.pipelines.live import run_live
        from vidgan.pipelines.live.sources import FileSource
        from vidgan.runtime.stylizer import Stylizer

        clip = make_clip(check.work / "live-in.mp4", width, height, rate,
                         round(rate * (seconds + 1)))
        backend = _auto_backend(check, height, width)
        stats = run_live(FileSource(clip), Stylizer(backend), window=False, duration=seconds,
                         stats_every=None, log=io.StringIO())
        p50, p95 = stats.latency_ms()
        row.update(status="ok", name=backend.name, fps=round(stats.fps, 2), source_fps=rate,
                   latency_p50_ms=round(p50, 1), latency_p95_ms=round(p95, 1),
                   shown=stats.shown, dropped=stats.dropped, captured=stats.captured)


def train_rows(check: Check, row: dict, resume: dict) -> None:
    steps, more = (2, 1) if check.cpu else (30, 15)
    if (why := check.no_time(20 if check.cpu else 90)) is not None:
        _fail([row, resume], why)
        return
    with attempt(row, resume):
        from vidgan.train import cyclegan as training
        from vidgan.train import recipes

        run = check.work / "train"
        overrides = {"data": str(training_images(check)), "out": str(run), "max_steps": steps,
                     "log_every": 5, "checkpoint_every": 1000, "device": str(check.device)}
        if check.cpu:
            overrides.update(generator_kwargs={"ngf": 4, "n_blocks": 1}, crop=32,
                             discriminator_kwargs={"ndf": 8}, pool_size=4, sample_size=32)
        else:
            overrides.update(crop=256)
        cfg = recipes.load_config(training.TrainConfig, "vangogh-resnet", overrides)
        row.update(_timed_train(check, cfg, resume=False))
        cfg = training.resumed_config(run, {"max_steps": steps + more})
        resume.update(_timed_train(check, cfg, resume=True))


def _timed_train(check: Check, cfg, resume: bool) -> dict:
    from vidgan.train import cyclegan as training

    def saved_state() -> dict:
        return torch.load(training.latest_checkpoint(cfg.out, training.CHECKPOINT_KEYS), weights_only=False)["state"]

    before = saved_state() if resume else {"step": 0, "seconds": 0.0}
    if check.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(check.device)
    training.train(cfg, resume=resume)
    state = saved_state()
    steps, seconds = state["step"] - before["step"], state["seconds"] - before["seconds"]
    amp = training._amp_dtype(check.device)
    result = {"status": "ok", "steps": steps, "steps_per_s": round(steps / seconds, 2),
              "crop": cfg.crop, "batch_size": cfg.batch_size, "step_after": state["step"],
              "autocast": str(amp).removeprefix("torch.") if amp else "none (fp32)",
              "note": "steps/s includes the run's first steps (cuDNN autotuning)"}
    if check.device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(check.device) / 2**20)
    return result


def training_images(check: Check) -> Path:
    """trainA (paintings) and trainB (photos) of generated images: speed needs no real data."""
    import numpy as np
    from PIL import Image

    root, size, count = check.work / "data", (40 if check.cpu else 286), (6 if check.cpu else 48)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for domain, tint in (("trainA", (1.0, 0.8, 0.2)), ("trainB", (0.1, 0.3, 0.9))):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a, b, c = rng.uniform(0.2, 1, 3)
            img = np.stack([a * xx, b * yy, c * (1 - xx) * yy], -1) * 180 + np.array(tint) * 75
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / domain / f"{i:03d}.jpg")
    return root


# --- summary ----------------------------------------------------------------------------------

def targets(rows: list[dict], peak: dict, size: tuple[int, int]) -> list[dict]:
    """The TensorRT targets on resnet at the first size (720p on a GPU)."""
    at = f"{size[1]}x{size[0]}"
    measured = {r["backend"]: r for r in rows if r["section"] == "model"
                and r["generator"] == "resnet" and r["size"] == at and r["status"] == "ok"}
    fps = {name: r["fps"] for name, r in measured.items()}
    trt = measured.get("TensorRT FP16")
    checks = [
        (f"TensorRT >= 2x torch fp16 (resnet {at})", fps.get("torch fp16"), TARGETS["vs_torch_fp16"],
         lambda base: trt["fps"] / base, "x"),
        (f"TensorRT >= 4x torch fp32 (resnet {at})", fps.get("torch fp32"), TARGETS["vs_torch_fp32"],
         lambda base: trt["fps"] / base, "x"),
        (f"TensorRT >= 35% of the fp16 matmul peak (resnet {at})", peak.get("fp16"),
         TARGETS["pct_peak"], lambda base: 100 * trt["tflops"] / base, "%"),
    ]
    out = []
    for text, base, needed, ratio, unit in checks:
        if trt is None or not base:
            out.append({"target": text, "status": "not measured (no TensorRT row, or its base)"})
            continue
        got = ratio(base)
        out.append({"target": text, "value": round(got, 2), "unit": unit,
                    "status": "met" if got >= needed else "not met"})
    return out


def write(report: dict, folder: Path) -> Path:
    """The JSON, written whole under a temporary name and then renamed."""
    from vidgan.core.files import write_atomic

    path = folder / ("gpu_check_cpu.json" if report["mode"] == "cpu rehearsal" else "gpu_check.json")
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    return write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")


def print_summary(report: dict) -> None:
    m, v = report["machine"], report["versions"]
    print(f"\n{m.get('gpu', 'CPU')}  torch {v['torch']} (CUDA {v['torch_cuda']})  onnxruntime "
          f"{v['onnxruntime-gpu'] or v['onnxruntime']}  TensorRT "
          f"{v['tensorrt-cu13'] or v['tensorrt-cu12'] or v['tensorrt'] or 'not installed'}")
    print(f"matmul peaks, TFLOP/s: {report['matmul_tflops']}")
    for r in report["rows"]:
        label = f"{r['section']:6} {r.get('generator', ''):8} {r['backend']:18} {r['size']:10}"
        if r["status"] != "ok":
            print(f"{label} {r['reason']}")
        elif r["section"] == "model":
            pct = f"{r['percent_of_peak']:5.1f}% {r['peak_precision']}" if "percent_of_peak" in r else ""
            print(f"{label} {r['fps']:8.1f} fps {r['tflops']:7.2f} TFLOP/s {pct} "
                  f"PSNR {r.get('psnr_db_vs_fp32', '-')} dB")
        elif r["section"] == "render":
            print(f"{label} {r['fps']:.1f} fps ({r['name']}); {r['verdict']}")
        elif r["section"] == "live":
            print(f"{label} {r['fps']:.1f} fps, latency p50 {r['latency_p50_ms']:.0f} ms, "
                  f"p95 {r['latency_p95_ms']:.0f} ms ({r['name']})")
        else:
            memory = f", peak {r['peak_memory_mib']} MiB" if "peak_memory_mib" in r else ""
            print(f"{label} {r['steps_per_s']} steps/s{memory}, autocast {r['autocast']}")
    for t in report["targets"]:
        value = f" ({t['value']}{t['unit']})" if "value" in t else ""
        print(f"{t['target']}: {t['status']}{value}")


if __name__ == "__main__":
    sys.exit(main())
