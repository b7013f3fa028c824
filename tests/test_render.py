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
import torch
from conftest import VIDEOS, make_clip, moving_square, needs_videos

from vidgan.core.progress import Progress
from vidgan.pipelines.render import render_video, to_host
from vidgan.runtime import video
from vidgan.runtime.stylizer import Stylizer
from vidgan.runtime.temporal import Stabilizer


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
    from vidgan.runtime.backends import load_backend

    threads = torch.get_num_threads()
    be = load_backend(tiny_model, "torch", "cpu")
    torch.set_num_threads(1)
    yield be
    torch.set_num_threads(threads)


def _render(src, dst, backend, height=None, stabilize=None, **kw):
    return render_video(src, dst, Stylizer(backend, height, _stabilizer(stabilize, backend)),
                        progress=False, **kw)


def _stabilizer(strength, backend):
    return None if strength is None else Stabilizer(strength, device=backend.device)


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
    "start not a number": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--start", "nan"],
                           "a number of seconds"),
    "crf out of range": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--crf", "999"], "0..51"),
    "unknown preset": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--preset", "bogus"],
                       "choose one of: ultrafast, superfast, veryfast"),
    "strength alone": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4",
                                  "--stabilize-strength", "0.5"], "applies with --stabilize"),
    "strength too big": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--stabilize",
                                    "--stabilize-strength", "3"], "between 0 and 1"),
    "output beyond the encoder": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4",
                                             "--output-height", "100000"], "16384 px a side"),
    "height beyond memory": (lambda t: [make_clip(t / "in.mp4"), t / "out.mp4", "--height",
                                        "100000"], "GB of CPU memory"),
    "nvenc without a GPU": (lambda t: _skip_if_nvenc() or [make_clip(t / "in.mp4"), t / "out.mp4",
                                                          "--codec", "h264_nvenc"],
                            "encodes on an NVIDIA GPU, and this machine has none"),
}


def _skip_if_nvenc() -> None:
    from vidgan.runtime.video import nvenc_available

    if nvenc_available():
        pytest.skip("this machine has NVENC")


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
    from vidgan.core import modelfile

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
        self.name, self.model_name, self.device = "failing", inner.model_name, inner.device
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
        render_video(src, tmp_path / "out.mp4", Stylizer(_FailingBackend(backend, exc)), progress=False)
    assert _leftovers(tmp_path) == []
    assert threading.active_count() == before


def test_an_interrupt_before_the_first_frame_says_none_was_rendered(backend, tmp_path, monkeypatch):
    from vidgan.core.errors import Interrupted

    def interrupted(self):  # the signal lands while the writer opens, before `as writer` binds
        raise KeyboardInterrupt

    monkeypatch.setattr(video.VideoWriter, "__enter__", interrupted)
    src = make_clip(tmp_path / "in.mp4", frames=24)
    with pytest.raises(Interrupted) as err:
        render_video(src, tmp_path / "out.mp4", Stylizer(backend), progress=False)
    assert err.value.message.startswith("interrupted after 0 of 24 frames: ")
    assert _leftovers(tmp_path) == []


def test_ctrl_c_stops_a_render_promptly(tiny_model, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=400)
    script = textwrap.dedent(f"""
        import faulthandler, signal, time
        import torch
        from vidgan.runtime.backends import load_backend
        from vidgan.pipelines.render import render_video
        from vidgan.runtime.stylizer import Stylizer
        faulthandler.register(signal.SIGUSR1)  # the test asks where it hangs, if it does
        # a suite started with `&` hands its children an ignored SIGINT; a terminal's Ctrl-C is not
        signal.signal(signal.SIGINT, signal.default_int_handler)
        inner = load_backend({str(tiny_model)!r}, "torch", "cpu")
        torch.set_num_threads(1)
        class Slow:
            name, model_name, device = "slow", inner.model_name, inner.device
            input_dtype, multiple = inner.input_dtype, inner.multiple
            def __call__(self, x):
                time.sleep(0.05)
                return inner(x)
        render_video({str(src)!r}, {str(tmp_path / "out.mp4")!r}, Stylizer(Slow()), progress=False)
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
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        pytest.fail("render did not stop 20 s after Ctrl-C; its threads:\n"
                    + proc.stderr.read().decode())
    assert code != 0
    assert _leftovers(tmp_path) == []


# --- progress ----------------------------------------------------------------------------------

def test_progress_prints_plain_lines_when_not_a_terminal(capsys):
    with Progress("render", total=4, every=0.0) as bar:
        for _ in range(4):
            bar.advance()
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("render: 4/4 frames (100.0%)") and "ETA" in lines[-1]


def test_summary_line(backend, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    render_video(src, tmp_path / "out.mp4", Stylizer(backend))
    out = capsys.readouterr().out
    assert out.startswith("rendered 3 frames in ")
    assert f"fps, {backend.name}, {backend.model_name}) -> " in out  # which model ran


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


def test_a_cpu_batch_is_encoded_as_it_is():
    batch = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    host, done = to_host(batch)
    assert host is batch and done is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_batch_goes_to_pinned_memory_without_blocking(tiny_model, tmp_path):
    batch = torch.randint(0, 256, (2, 48, 64, 3), dtype=torch.uint8, device="cuda")
    host, done = to_host(batch)
    done.synchronize()
    assert host.is_pinned() and host.device.type == "cpu" and torch.equal(host, batch.cpu())
    src = make_clip(tmp_path / "in.mp4")
    result = render_video(src, tmp_path / "out.mp4", Stylizer.build(tiny_model, device="cuda"),
                          batch_size=2, progress=False)
    assert result.frames == _video(src)["frames"] and result.backend.startswith("torch-cuda")
# --- damaged inputs: frames lost are counted, never hidden ---------------------------------------

def _gop_clip(path: Path, frames: int = 48, gop: int = 12, width: int = 160, height: int = 120) -> Path:
    """A noisy H.264 clip, a keyframe every `gop` frames, its index at the front (faststart),
    so that a copy cut short still says how many frames and seconds it had."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        v = out.add_stream("libx264", rate=24, options={"g": str(gop), "keyint_min": str(gop),
                                                        "sc_threshold": "0", "bf": "0"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = moving_square(i, width, height).astype(int) + rng.integers(-20, 20, (height, width, 3))
            out.mux(v.encode(av.VideoFrame.from_ndarray(img.clip(0, 255).astype(np.uint8))))
        out.mux(v.encode())
    return path


def _packet_offsets(path: Path) -> list[tuple[int, int, bool]]:
    """(file offset, size, keyframe) of each video packet."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]


def _damaged(src: Path, dst: Path, packets: list[int]) -> Path:
    """A copy of `src` whose given packets are overwritten with random bytes."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(1)
    offsets = _packet_offsets(src)
    for i in packets:
        pos, size, _ = offsets[i]
        data[pos + 4:pos + size] = rng.integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def test_a_file_cut_in_half_is_counted_and_its_last_frame_not_stretched(backend, tmp_path, capsys):
    src = _gop_clip(tmp_path / "full.mp4")
    raw = src.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(raw[: len(raw) // 2])
    result = _render(half, tmp_path / "out.mp4", backend)
    out = _video(tmp_path / "out.mp4")
    assert 0 < out["frames"] == result.frames < 48 and result.lost == 48 - out["frames"]
    assert f"{result.lost} of 48 frames of half.mp4 could not be decoded" in capsys.readouterr().err
    # it ends one frame after its last frame, not at the 2 s the damaged file claims
    assert out["duration"] == pytest.approx(out["times"][-1] + 1 / 24, abs=1e-3)


def test_random_bytes_mid_stream_are_counted(backend, tmp_path, capsys):
    src = _damaged(_gop_clip(tmp_path / "full.mp4"), tmp_path / "bad.mp4", [20, 21, 22])
    result = _render(src, tmp_path / "out.mp4", backend)
    frames = _video(tmp_path / "out.mp4")["frames"]
    assert result.lost == 48 - frames > 0
    assert f"{result.lost} of 48 frames of bad.mp4 could not be decoded" in capsys.readouterr().err


def test_a_damaged_first_keyframe_starts_at_the_next_one(backend, tmp_path):
    from vidgan.runtime.video import probe

    src = _gop_clip(tmp_path / "full.mp4")
    assert [i for i, (_, _, key) in enumerate(_packet_offsets(src)) if key][:2] == [0, 12]
    bad = _damaged(src, tmp_path / "bad.mp4", [0])
    assert probe(bad).frames == 48  # not refused: frames 12.. decode
    result = _render(bad, tmp_path / "out.mp4", backend)
    out = _video(tmp_path / "out.mp4")
    assert result.frames == out["frames"] == 36 and result.lost == 12
    assert out["times"][0] == pytest.approx(12 / 24, abs=1e-3)  # its own time, not shifted


def test_live_file_source_exposes_the_frames_lost(tmp_path):
    from vidgan.pipelines.live.sources import FileSource

    src = _gop_clip(tmp_path / "full.mp4")
    raw = src.read_bytes()
    (tmp_path / "half.mp4").write_bytes(raw[: len(raw) // 2])
    source = FileSource(tmp_path / "half.mp4")
    source._interval = float("inf")  # never late: every frame is read, none skipped
    read = 0
    while source.read() is not None:
        read += 1
    assert 0 < read < 48 and source.undecodable == 48 - read
    source.close()


def _out_of_order_clip(path: Path, order: list[int]) -> Path:
    """An MJPEG clip (every frame a keyframe) whose frame i carries the timestamp order[i]
    frames of 1/12 s. Matroska stores them as they are; the muxer only wants decode timestamps
    that never decrease and never pass the frame's own."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("mjpeg", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        s.time_base = Fraction(1, 12)
        for i, t in enumerate(order):
            frame = av.VideoFrame.from_ndarray(moving_square(i, 64, 48), format="rgb24")
            for packet in s.encode(frame):
                packet.pts, packet.dts = t, min(order[i:])
                out.mux(packet)
    return path


def test_timestamps_going_backwards_keep_a_frames_spacing(tmp_path):
    from vidgan.runtime.video import VideoReader, probe

    # frame 4 jumps back 3 frames, as where two clips were joined
    src = _out_of_order_clip(tmp_path / "joined.mkv", [0, 1, 2, 3, 1, 2, 3, 4])
    info = probe(src)
    frames = list(VideoReader(info))
    times = [float(f.pts * info.time_base) for f in frames]
    assert times == pytest.approx([i / 12 for i in range(8)], abs=0.002)
    step = round(1 / (12 * info.time_base))
    assert all(abs(f.duration - step) <= 1 for f in frames)  # no frame one tick long


def test_the_writer_puts_a_repeated_timestamp_one_frame_later(tmp_path):
    from vidgan.runtime.video import VideoWriter

    with VideoWriter(tmp_path / "out.mp4", 64, 48, Fraction(10), time_base=Fraction(1, 1000)) as w:
        for i, pts in enumerate([0, 100, 200, 200, 150, 500]):
            w.write(moving_square(i, 64, 48), pts)
    assert _video(tmp_path / "out.mp4")["times"] == [0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_full_disk_while_rendering_is_one_error_and_leaves_no_file(tiny_model, tmp_path):
    from conftest import cli_code, run_with_file_limit

    from vidgan.runtime.backends import load_backend

    load_backend(tiny_model, "onnxruntime", "cpu")  # its ONNX export cached before the limit
    src = _gop_clip(tmp_path / "in.mp4", width=64, height=48)
    assert src.stat().st_size > 5_000  # and so is its rendering
    proc = run_with_file_limit(cli_code("render", src, tmp_path / "out.mp4", "--model", tiny_model,
                                        "--backend", "onnxruntime"), 5_000)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]  # after any progress lines
    assert last.startswith(f"error: cannot write {tmp_path / 'out.mp4'}: File too large")
    assert [line.startswith("error:") for line in proc.stderr.splitlines()].count(True) == 1
    assert "Traceback" not in proc.stderr
    assert _leftovers(tmp_path) == []


def test_sighup_stops_a_render_with_a_summary_and_no_file(tiny_model, tmp_path):
    from conftest import signal_when, slow_cli_code

    src = make_clip(tmp_path / "in.mp4", frames=400)
    code = slow_cli_code("render", src, tmp_path / "out.mp4", "--model", tiny_model,
                         "--backend", "torch", delay=0.05)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    status, err = signal_when(proc, (tmp_path / "out.partial.mp4").exists, signal.SIGHUP)
    assert status == 128 + signal.SIGHUP, err
    last = err.splitlines()[-1]
    assert last.startswith("interrupted after ") and last.endswith(
        f"of 400 frames: {tmp_path / 'out.mp4'} was not written (it appears only when complete)")
    assert _leftovers(tmp_path) == [] and "Traceback" not in err
