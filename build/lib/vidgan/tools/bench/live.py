"""`vidgan bench live`: capture-to-display latency and fps of `vidgan live`, headless."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vidgan.core.device import resolve_device
from vidgan.core.errors import VidganError
from vidgan.pipelines.live import run_live
from vidgan.pipelines.live.sources import FileSource
from vidgan.runtime.backends import BACKENDS, load_backend
from vidgan.runtime.stylizer import Stylizer
from vidgan.tools.bench.clips import live_clip
from vidgan.tools.bench.results import write_result


def bench_live(backends=None, heights=(360, 720), clip: str | Path | None = None,
               seconds: float = 10.0, model: str | Path | None = None, device: str | None = None,
               precision: str = "auto", out: str | Path | None = None) -> dict:
    """Capture-to-display latency (p50/p95) and fps of `vidgan live`, headless, per backend and
    processing height, from a video file played as live at its own frame rate.

    clip: default a generated 1280x720 20 fps clip (the README's table played the data set's
    cockatoo_yuv420.mp4, a 1280x720 20 fps clip, with --clip). Target on a GPU: p95 latency under two frame intervals of the source at 720p.
    Prints a table and writes live-<cpu|cuda>.json in `out` (see write_result); returns it.
    """

    dev = resolve_device(device)
    clip = Path(clip) if clip else live_clip()
    rows = []
    for name in backends or list(BACKENDS):
        try:
            backend = load_backend(model, name, str(dev), precision)
        except VidganError as exc:
            rows.append({"backend": name, "unavailable": exc.message})
            continue
        for height in heights:
            source = FileSource(clip)
            stats = run_live(source, Stylizer(backend, height), window=False,
                             duration=seconds, stats_every=None, log=io.StringIO())
            target, p95 = 2000 / float(source.rate), stats.latency_ms()[1]
            rows.append({**stats.as_dict(), "height": height, "source_fps": float(source.rate),
                         "target_p95_ms": round(target, 1),
                         "meets_target": p95 is not None and p95 < target})
    _live_table(rows, clip, str(dev))
    result = {"device": str(dev), "clip": clip.name, "seconds": seconds, "rows": rows}
    write_result(f"live-{dev.type}", result, out)
    return result


def _live_table(rows: list[dict], clip: Path, device: str) -> None:
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
