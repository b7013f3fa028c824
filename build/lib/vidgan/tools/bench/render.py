"""`vidgan bench render`: the render pipeline against its parts, as ratios measured in one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import torch
from rich.console import Console
from rich.table import Table

from vidgan.core import models
from vidgan.core.device import resolve_device
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import BUNDLED, resolve, save_model
from vidgan.pipelines.render import render_video
from vidgan.runtime import frames, video
from vidgan.runtime.backends import load_backend
from vidgan.runtime.stylizer import Stylizer
from vidgan.tools.bench.clips import live_clip, synthetic_clip
from vidgan.tools.bench.results import sync, write_result

RENDER_TARGETS = {"overhead": 0.8, "overlap": 0.85, "memory": 1.2}


class IdentityBackend:
    """A backend whose model returns its input: what the pipeline costs around the model."""

    name, model_name, multiple = "identity", "identity", 1

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.input_dtype = torch.float32

    def __call__(self, x):
        return x


def bench_render(model: str | Path | None = None, backends=None, device: str | None = None,
                 clip: str | Path | None = None, heights=None, seconds: float = 5.0,
                 batch: int = 1, memory_seconds=(1.0, 30.0), out: str | Path | None = None) -> dict:
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
    Prints a table, writes render.json in `out` (see write_result) and returns what it wrote.
    """

    dev = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="vidgan-bench-") as tmp:
        tmp = Path(tmp)
        clip = Path(clip) if clip else live_clip()
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
    write_result("render", result, out)
    return result


def _bare_codec_fps(clip: Path, frames: int) -> float:
    """PyAV alone: decode `frames` frames and encode them as render does (no RGB, no model)."""

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

    result = render_video(clip, tmp / "render.mp4", Stylizer(backend, height),
                          duration=seconds, batch_size=batch, overwrite=True, progress=False)
    return result.fps


def _bench_render_model(model, tmp: Path) -> Path:
    if model is not None or BUNDLED.exists():
        return resolve(model)
    return save_model(tmp / "bench-fast.safetensors", models.build("fast"), "fast", {})


def _overlap_row(clip: Path, tmp: Path, model: Path, name: str, dev, height: int,
                 seconds: float, batch: int, bare: float) -> dict:
    """Model-only fps (before and after the render, averaged) against render fps."""

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
    sync(dev)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        backend(x)
        calls += 1
    sync(dev)
    return calls * len(x) / (time.perf_counter() - start)


def _render_memory(tmp: Path, lengths) -> dict:
    rows = []
    for seconds in lengths:
        clip = synthetic_clip(tmp / f"memory-{seconds:g}s.mp4", seconds)
        code = ("import sys; from vidgan.tools.bench.render import render_memory_worker; "
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


    result = render_video(clip, out, Stylizer(IdentityBackend()), overwrite=True, progress=False)
    print(json.dumps({"frames": result.frames,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _render_table(result: dict) -> None:
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
