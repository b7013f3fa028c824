"""`vidgan bench WHAT`: picks the benchmark and checks its options (a user error, not a
silent no-op, for one it doesn't take)."""

from __future__ import annotations

import inspect

from vidgan.core.errors import VidganError
from vidgan.tools.bench.live import bench_live
from vidgan.tools.bench.model import MODEL_VARIANTS, bench_model
from vidgan.tools.bench.render import bench_render
from vidgan.tools.bench.train import bench_train


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"640x360,1280x720" (width x height) -> [(360, 640), (720, 1280)] as (H, W)."""

    sizes = []
    for item in text.replace(" ", "").split(","):
        w, _, h = item.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise VidganError(f"--sizes takes WIDTHxHEIGHT items separated by commas, not {item!r}")
        sizes.append((int(h), int(w)))
    return sizes


BENCHES = {"model": bench_model, "render": bench_render, "live": bench_live, "train": bench_train}
__all__ = ["BENCHES", "MODEL_VARIANTS", "parse_sizes", "run_bench"]


def run_bench(what: str, **options) -> dict:
    """`vidgan bench WHAT`: bench_WHAT with the options given (None: its default).

    An option that bench doesn't take is a user error, not a silent no-op.
    """

    if what not in BENCHES:
        raise VidganError(f"unknown benchmark {what!r}; choose one of: {', '.join(BENCHES)}")
    bench = BENCHES[what]
    given = {k: v for k, v in options.items() if v not in (None, [], ())}
    takes = inspect.signature(bench).parameters
    extra = [k for k in given if k not in takes]
    if extra:
        flag = {"backends": "backend", "generators": "generator", "heights": "height"}.get(
            extra[0], extra[0]).replace("_", "-")
        raise VidganError(f"`vidgan bench {what}` does not take --{flag}")
    return bench(**given)
