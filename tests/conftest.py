"""Shared fixtures: tiny model files, generated clips and images, the shared data sets."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VANGOGH = SHARED_DATA / "vangogh2photo"
VIDEOS = SHARED_DATA / "videos"

needs_vangogh = pytest.mark.skipif(not VANGOGH.is_dir(), reason=f"data set {VANGOGH} is absent")
needs_videos = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"clips folder {VIDEOS} is absent")


@pytest.fixture(autouse=True, scope="session")
def _caches_in_tmp(tmp_path_factory):
    """Exports and engines that tests cause go to temporary folders, not the user's cache."""
    import os

    os.environ["VIDGAN_ENGINES"] = str(tmp_path_factory.mktemp("engines"))
    os.environ["VIDGAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def one_thread():
    """Torch uses one thread in a module that opts in (`pytestmark = usefixtures("one_thread")`).

    The suite shares two busy cores: more threads than free cores make each op far slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def vidgan_cli(monkeypatch, capsys):
    """`run(*args)` runs `vidgan ARGS` in this process through main() -> CliResult(code, out, err).

    Arguments may be paths or numbers; out and err are what the run printed (read from capsys).
    """
    import sys

    from vidgan import cli

    def run(*args) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["vidgan", *map(str, args)])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A model file holding a very small `fast` generator (random weights)."""
    import torch

    from vidgan.core import models
    from vidgan.core.modelfile import save_model

    torch.manual_seed(0)
    kwargs = {"ngf": 4, "n_blocks": 1}
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    return save_model(path, models.build("fast", **kwargs), "fast", kwargs)


def make_clip(path: Path, frames: int = 12, width: int = 64, height: int = 48, fps: int | Fraction = 12,
              audio: str | None = None, codec: str = "libx264", pts: list[int] | None = None) -> Path:
    """Write a small test clip with moving content; optional audio codec ("aac", "mp3", "pcm_s16le").

    `pts` (in 1/1000 s) gives a variable frame rate; otherwise frames are 1/fps apart.
    """
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if pts is not None:
            v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        a = out.add_stream(audio, rate=48000) if audio else None
        for i in range(frames):
            img = moving_square(i, width, height)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            _write_tone(out, a, seconds=frames / float(fps))
    return path


def _write_tone(out, stream, seconds: float) -> None:
    import av

    rate, n = 48000, 1024
    fmt = "fltp" if stream.codec_context.name != "pcm_s16le" else "s16"
    t = 0
    while t < seconds * rate:
        samples = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(n) + t) / rate)).astype(np.float32)
        data = samples[None] if fmt == "fltp" else (samples * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, t
        out.mux(stream.encode(frame))
        t += n
    out.mux(stream.encode())


def moving_square(i: int, width: int, height: int) -> np.ndarray:
    """A textured background with a bright square that moves 2 px right per frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 4) % 256, (yy * 4) % 256, np.full_like(xx, 96)], axis=-1).astype(np.uint8)
    x0 = (4 + 2 * i) % max(1, width - 16)
    img[8:24, x0:x0 + 16] = (250, 240, 60)
    return img


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "clip.mp4")


def run_with_file_limit(code: str, limit: int, timeout: float = 120):
    """Run Python `code` in a subprocess that cannot grow any file past `limit` bytes.

    RLIMIT_FSIZE makes such a write fail with EFBIG ("File too large"), as a full disk fails
    with ENOSPC: real OSErrors from real writes, with no root needed. SIGXFSZ, which would
    kill the process instead, is ignored.
    """
    import os
    import resource
    import signal
    import subprocess
    import sys

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit_files, env=env)


def cli_code(*args) -> str:
    """Python code that runs `vidgan ARGS` through vidgan.cli.main()."""
    return f"import sys; from vidgan import cli; sys.argv = ['vidgan', *{[str(a) for a in args]!r}]; cli.main()"


def slow_cli_code(*args, delay: float = 0.1) -> str:
    """Like `cli_code`, with every model call `delay` seconds slower: a run long enough for a
    test to signal it midway. The backend is the real one, wrapped."""
    return f"""
import sys, time
from vidgan import cli
from vidgan.runtime import stylizer
real = stylizer.load_backend
class Slow:
    def __init__(self, inner):
        self.inner = inner
        self.name, self.device, self.multiple = inner.name, inner.device, inner.multiple
        self.input_dtype, self.model_name = inner.input_dtype, inner.model_name
    def __call__(self, x):
        time.sleep({delay})
        return self.inner(x)
stylizer.load_backend = lambda *a, **k: Slow(real(*a, **k))
sys.argv = ['vidgan', *{[str(a) for a in args]!r}]
cli.main()
"""


def signal_when(proc, ready, sig, timeout: float = 60) -> tuple[int, str]:
    """Send `sig` to the subprocess `proc` once `ready()` is true; (exit code, stderr)."""
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err
