"""`vidgan render`: every frame with its timestamp, the audio, the user errors, clean failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import VIDEOS, make_clip, moving_square, needs_videos

from vidgan.render import FrameProgress, render_video


def _video(path: Path) -> dict:
    """What a file holds: frame count, rate, duration, timestamps (s), size, audio codec."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [round(float(f.time), 4) for f in c.decode(s)]
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return {"frames": len(times), "rate": s.average_rate, "times": times,
                "duration": float(s.duration * s.time_base), "size": (s.width, s.height),
                "audio": audio}


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def backend(tiny_model):
    """The tiny model on the CPU with one thread: on a busy 2-core machine, two spinning
    threads make each of these tiny renders a hundred times slower."""
    import torch

    from vidgan.backends import load_backend

    threads = torch.get_num_threads()
    be = load_backend(tiny_model, "torch", "cpu")
    torch.set_num_threads(1)
    yield be
    torch.set_num_threads(threads)


def _render(src, dst, backend, **kw):
    return render_video(src, dst, backend=backend, progress=False, **kw)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or p.name.startswith("out"))


def test_render_keeps_every_frame_and_timestamp(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=12, fps=12)
    result = _render(src, tmp_path / "out.mp4", backend)
    got, want = _video(tmp_path / "out.mp4"), _video(src)
    assert result.frames == 12
    for key in ("frames", "rate", "times", "duration", "size"):
        assert got[key] == want[key], key


def test_render_changes_the_pixels(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    _render(src, tmp_path / "out.mp4", backend)
    with av.open(str(tmp_path / "out.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first.astype(int) - moving_square(0, 64, 48)).mean() > 10


@pytest.mark.parametrize("audio", ["aac", "mp3"])
def test_audio_is_copied_when_the_container_takes_it(backend, tmp_path, audio):
    src = make_clip(tmp_path / "in.mp4", frames=12, audio=audio)
    _render(src, tmp_path / "out.mp4", backend)
    assert _audio_packets(tmp_path / "out.mp4") == _audio_packets(src)  # byte for byte: a copy


@pytest.mark.parametrize("container", ["mov", "mkv"])
def test_pcm_audio_is_transcoded_to_aac_for_mp4(backend, tmp_path, container):
    src = make_clip(tmp_path / f"in.{container}", frames=12, audio="pcm_s16le")
    _render(src, tmp_path / "out.mp4", backend)
    with av.open(str(tmp_path / "out.mp4")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        assert float(a.duration * a.time_base) == pytest.approx(1.0, abs=0.05)


def test_odd_chroma_width(backend, tmp_path):
    # 86 / 2 = 43: the chroma planes have an odd width, as with 854x480
    src = make_clip(tmp_path / "in.mp4", frames=4, width=86, height=48)
    _render(src, tmp_path / "out.mp4", backend)
    assert _video(tmp_path / "out.mp4")["size"] == (86, 48)


def test_odd_frame_size_is_padded_to_even(backend, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=4, width=85, height=47, codec="ffv1")
    _render(src, tmp_path / "out.mp4", backend)
    got = _video(tmp_path / "out.mp4")
    assert got["size"] == (86, 48) and got["frames"] == 4


def test_variable_frame_rate_keeps_timestamps(backend, tmp_path):
    pts = [0, 100, 150, 400, 450, 700, 720, 900]
    src = make_clip(tmp_path / "in.mp4", frames=len(pts), pts=pts)
    _render(src, tmp_path / "out.mp4", backend)
    assert _video(tmp_path / "out.mp4")["times"] == [p / 1000 for p in pts]


def test_start_and_duration_select_a_span(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=24, fps=12, audio="aac")
    _render(src, tmp_path / "out.mp4", backend, start=0.5, duration=1.0)
    got = _video(tmp_path / "out.mp4")
    assert got["frames"] == 12
    assert got["times"][0] == pytest.approx(0.0, abs=0.01)
    assert got["times"][-1] - got["times"][0] == pytest.approx(11 / 12, abs=0.01)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert float(c.duration / av.time_base) == pytest.approx(1.0, abs=0.05)


def test_side_by_side_doubles_the_width(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    _render(src, tmp_path / "out.mp4", backend, side_by_side=True)
    assert _video(tmp_path / "out.mp4")["size"] == (128, 48)
    with av.open(str(tmp_path / "out.mp4")) as c:
        left = next(c.decode(video=0)).to_ndarray(format="rgb24")[:, :64]
    assert np.abs(left.astype(int) - moving_square(0, 64, 48)).mean() < 8  # the original


def test_processing_and_output_height(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=2, width=128, height=96)
    _render(src, tmp_path / "out.mp4", backend, height=48, output_height=48)
    assert _video(tmp_path / "out.mp4")["size"] == (64, 48)


def _corrupt_mjpeg_clip(path: Path, frames: int = 12, bad: int = 5) -> Path:
    """An MJPEG clip whose frame `bad` is zeroed after its start marker: undecodable."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("mjpeg", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(moving_square(i, 64, 48), format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode())
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    data[starts[bad] + 2:starts[bad + 1] - 20] = bytes(starts[bad + 1] - 22 - starts[bad])
    path.write_bytes(bytes(data))
    return path


def test_corrupt_frames_are_skipped_and_counted(backend, tmp_path, capsys):
    src = _corrupt_mjpeg_clip(tmp_path / "in.mkv")
    result = _render(src, tmp_path / "out.mp4", backend)
    assert result.lost == 1
    assert _video(tmp_path / "out.mp4")["frames"] == 11
    assert "1 of 12 frames of in.mkv could not be decoded" in capsys.readouterr().err


# --- user errors: one line, exit code 2, no traceback, no file ---------------------------------

def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(a.encode(frame))
        out.mux(a.encode())
    return path


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere it has permission bits against it
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder is unwritable")
        return Path("/sys")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    return folder


ERRORS = {
    "missing": (lambda t: [t / "nope.mp4", t / "out.mp4"], "does not exist"),
    "not a video": (lambda t: [_text(t / "notes.mp4"), t / "out.mp4"], "not a video"),
    "no video stream": (lambda t: [_audio_only(t / "sound.m4a"), t / "out.mp4"], "no video stream"),
    "image": (lambda t: [_png(t / "photo.png"), t / "out.mp4"], "vidgan stylize"),
    "same path": (lambda t: [make_clip(t / "in.mp4"), t / "." / "in.mp4"], "is the input"),
    "exists": (lambda t: [make_clip(t / "in.mp4"), _text(t / "out.mp4")], "--overwrite"),
    "no folder": (lambda t: [make_clip(t / "in.mp4"), t / "missing" / "out.mp4"], "does not exist"),
    "unwritable": (lambda t: [make_clip(t / "in.mp4"), _unwritable(t) / "out.mp4"], "cannot write"),
    "unknown codec": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--codec", "divx"], "codec"),
    "bad container": (lambda t: [make_clip(t / "in.mp4"), t / "out.xyz"], "container format"),
    "start past end": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--start", "5"], "past the end"),
}


def _text(path: Path) -> Path:
    path.write_text("hello")
    return path


def _png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(moving_square(0, 64, 48)).save(path)
    return path


@pytest.mark.parametrize("case", ERRORS)
def test_user_errors_are_one_line(tiny_model, tmp_path, vidgan_cli, case):
    make_args, message = ERRORS[case]
    args = make_args(tmp_path)
    before = set(tmp_path.iterdir())
    code, _, err = vidgan_cli("render", *args, "--model", tiny_model)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # nothing written, nothing left behind


def test_missing_bundled_model_is_a_user_error(tmp_path, vidgan_cli, monkeypatch):
    from vidgan import modelfile

    monkeypatch.setattr(modelfile, "BUNDLED", tmp_path / "missing.safetensors")
    src = make_clip(tmp_path / "in.mp4", frames=3)
    code, _, err = vidgan_cli("render", src, tmp_path / "out.mp4", "--backend", "torch")
    assert code == 2 and err.startswith("error: ") and "bundled model" in err
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_the_output(tiny_model, tmp_path, vidgan_cli):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    _text(tmp_path / "out.mp4")
    code, _, _ = vidgan_cli("render", src, tmp_path / "out.mp4", "--model", tiny_model,
                            "--overwrite", "--device", "cpu")
    assert code == 0 and _video(tmp_path / "out.mp4")["frames"] == 3


# --- failures mid-way: no finished-looking file, no thread left ---------------------------------

class _FailingBackend:
    """A backend that raises `exc` on call number `after`."""

    def __init__(self, inner, exc: BaseException, after: int = 3):
        self.inner = inner
        self.name, self.device = "failing", self.inner.device
        self.input_dtype, self.multiple = self.inner.input_dtype, self.inner.multiple
        self.exc, self.after, self.calls = exc, after, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.after:
            raise self.exc
        return self.inner(x)


@pytest.mark.parametrize("exc", [RuntimeError("model failed"), KeyboardInterrupt()])
def test_failure_midway_leaves_no_file_and_no_thread(backend, tmp_path, exc):
    src = make_clip(tmp_path / "in.mp4", frames=24, audio="aac")
    before = threading.active_count()
    with pytest.raises(type(exc)):
        render_video(src, tmp_path / "out.mp4", backend=_FailingBackend(backend, exc), progress=False)
    assert _leftovers(tmp_path) == []
    assert threading.active_count() == before


def test_ctrl_c_stops_a_render_promptly(tiny_model, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=400)
    script = textwrap.dedent(f"""
        import time
        import torch
        from vidgan.backends import load_backend
        from vidgan.render import render_video
        inner = load_backend({str(tiny_model)!r}, "torch", "cpu")
        torch.set_num_threads(1)
        class Slow:
            name, device, input_dtype, multiple = "slow", inner.device, inner.input_dtype, inner.multiple
            def __call__(self, x):
                time.sleep(0.05)
                return inner(x)
        render_video({str(src)!r}, {str(tmp_path / "out.mp4")!r}, backend=Slow(), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out.partial.mp4").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    finally:
        proc.kill()
    assert code != 0
    assert _leftovers(tmp_path) == []


# --- progress ----------------------------------------------------------------------------------

def test_progress_prints_plain_lines_when_not_a_terminal(capsys):
    with FrameProgress("render", total=4, every=0.0) as bar:
        for _ in range(4):
            bar.advance()
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("render: 4/4 frames") and "ETA" in lines[-1]


def test_summary_line(backend, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    render_video(src, tmp_path / "out.mp4", backend=backend)
    out = capsys.readouterr().out
    assert out.startswith("rendered 3 frames in ") and f"fps, {backend.name}) -> " in out


# --- real clips (../shared/data/videos) ---------------------------------------------------------

@needs_videos
@pytest.mark.parametrize("name", ["realshort.mp4", "fire2.mp4"])
def test_real_clips_keep_frames_duration_and_audio(backend, tmp_path, name):
    src = VIDEOS / name
    if not src.exists():
        pytest.skip(f"{src} is absent")
    _render(src, tmp_path / "out.mp4", backend, height=48)
    got, want = _video(tmp_path / "out.mp4"), _video(src)
    for key in ("frames", "times", "audio"):
        assert got[key] == want[key], key
    assert got["duration"] == pytest.approx(want["duration"], abs=1e-3)


@needs_videos
def test_real_rotated_clip_is_written_upright(backend, tmp_path):
    src = VIDEOS / "fire2.mp4"  # stored upside down, with a -180 degree display matrix
    if not src.exists():
        pytest.skip(f"{src} is absent")
    _render(src, tmp_path / "out.mp4", backend, height=48, duration=0.2, side_by_side=True)
    with av.open(str(src)) as c:
        raw = next(c.decode(video=0))
        assert raw.rotation in (180, -180)
        upright = np.rot90(raw.to_ndarray(format="rgb24"), 2)
    with av.open(str(tmp_path / "out.mp4")) as c:
        frame = next(c.decode(video=0))
        left = frame.to_ndarray(format="rgb24")[:, :1280]
    assert frame.rotation == 0
    assert np.abs(left.astype(int) - upright).mean() < 8


@needs_videos
def test_real_854x480_clip(backend, tmp_path):
    src = VIDEOS / "doc_medias_example3.mp4"
    if not src.exists():
        pytest.skip(f"{src} is absent")
    _render(src, tmp_path / "out.mp4", backend, height=48, duration=0.5)
    got = _video(tmp_path / "out.mp4")
    assert got["size"] == (854, 480) and got["frames"] == 12 and got["audio"] == "mp3float"


def test_odd_frame_rate_is_kept(backend, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=30, width=32, height=32, fps=Fraction(30000, 1001))
    _render(src, tmp_path / "out.mp4", backend)
    got = _video(tmp_path / "out.mp4")
    assert got["rate"] == Fraction(30000, 1001) and got["times"] == _video(src)["times"]
