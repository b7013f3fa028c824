"""`vidgan live`: sources, the latest-frame pipeline, recording, stats, keys and user errors.

Headless and on the CPU: frames come from generated clips and from `SyntheticCamera`, a real
source that produces numbered frames at a given rate. The window's, the screen's and the served
page's tests run on a private X server (Xvfb, with openbox as window manager when installed) and
in headless Chromium, and skip where those are not installed; the real camera test runs only
where this machine has one.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
import torch
from conftest import VIDEOS, make_clip, moving_square, needs_videos

from vidgan.core.errors import VidganError
from vidgan.pipelines.live import SourceLost, open_source, run_live
from vidgan.pipelines.live.pipeline import Frame, Inference, LatestSlot, LiveStats, slow_hint
from vidgan.pipelines.live.server import BOUNDARY, StreamServer, parse_address
from vidgan.pipelines.live.sinks import (
    HELP,
    KEYS,
    Recorder,
    ViewState,
    compose,
    draw_panel,
    fit,
    handle_key,
    text_style,
    window_size,
)
from vidgan.pipelines.live.sources import FileSource, available_cameras, screen_box
from vidgan.runtime.stylizer import Stylizer

MARK = 16  # side of the top-left block whose grey level numbers the frame
STEP = 5  # grey levels between consecutive frame numbers: survives h264 at crf 18


class SyntheticCamera:
    """A source that produces numbered frames at `rate` per second, on time, like a camera.

    Frame i shows a moving square and, top left, a block of grey level STEP * i; `emitted[i]`
    is the monotonic time it was delivered. frames=None runs until closed; lose_after=N acts
    like a camera unplugged after N frames; stall=(N, s) delays frame N and all after it by s
    seconds, like a camera that hiccups; on_demand=True makes it a source read only when a
    frame is wanted, as the screen is.
    """

    def __init__(self, rate: float = 30, frames: int | None = None, width: int = 64,
                 height: int = 48, lose_after: int | None = None,
                 stall: tuple[int, float] = (0, 0.0), on_demand: bool = False, clock=None):
        self.rate, self.frames, self.lose_after = Fraction(rate), frames, lose_after
        self.clock = clock  # a FakeClock: each read moves it one frame on, instead of sleeping
        self.stall = stall
        self.width, self.height = width, height
        self.name = "synthetic camera"
        self.lost, self.skipped, self.on_demand = False, 0, on_demand
        self.emitted: list[float] = []
        self.closed = False

    def read(self) -> np.ndarray | None:
        i = len(self.emitted)
        if self.lose_after is not None and i >= self.lose_after:
            self.lost = True
            return None
        if self.frames is not None and i >= self.frames:
            return None
        if i and self.clock is not None:
            self.clock.advance(1 / float(self.rate))
        elif i:
            due = self.emitted[0] + i / float(self.rate) + (self.stall[1] if i >= self.stall[0] else 0)
            time.sleep(max(0.0, due - time.monotonic()))
        image = moving_square(i, self.width, self.height)
        image[:MARK, :MARK] = STEP * i % 256
        self.emitted.append(self.clock() if self.clock is not None else time.monotonic())
        return image

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """A stand-in for time.monotonic that moves only when something sleeps on it or advances it."""

    def __init__(self):
        self.now, self._lock = 1000.0, threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    sleep = advance


class NoiseCamera(SyntheticCamera):
    """A SyntheticCamera whose frames are random noise: JPEGs that do not compress (~60 KB at
    320x240), so a viewer that stops reading fills its connection's buffers within frames."""

    def read(self) -> np.ndarray | None:
        image = super().read()
        if image is None:
            return None
        return np.random.default_rng(len(self.emitted)).integers(0, 256, image.shape, np.uint8)


class IdentityBackend:
    """A backend whose model returns its input: the recording then shows the camera's numbers."""

    name, device, input_dtype, multiple = "identity", torch.device("cpu"), torch.float32, 4
    model_name = "identity"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class SlowBackend:
    """Wraps a backend and sleeps `delay` seconds per call: a model slower than the source."""

    def __init__(self, inner, delay: float):
        self.inner, self.delay = inner, delay
        self.name, self.model_name, self.device = f"slow-{inner.name}", inner.model_name, inner.device
        self.input_dtype, self.multiple = inner.input_dtype, inner.multiple

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return self.inner(x)


@pytest.fixture(scope="module")
def tiny_backend(tiny_model):
    from vidgan.runtime.backends import load_backend

    return load_backend(tiny_model, "torch", "cpu")


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Frames (RGB) and their timestamps in seconds."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def frame_number(image: np.ndarray) -> int:
    return round(float(image[2:MARK - 2, 2:MARK - 2].mean()) / STEP)


SOURCE_OPTIONS = {"camera", "screen", "monitor", "region", "input", "loop", "capture_size", "fps"}


def headless(source, backend, height=None, model=None, device=None, **kw):
    """A headless run of `source` (None: the one the source options in `kw` open) through
    `backend` (a Backend, or a backend name for `model` on `device`)."""
    if source is None:
        source = open_source(**{k: kw.pop(k) for k in list(kw) if k in SOURCE_OPTIONS})
    if isinstance(backend, str):
        stylizer = Stylizer.build(model, backend, device, height=height)
    else:
        stylizer = Stylizer(backend, height)
    log = io.StringIO()
    stats = run_live(source, stylizer, window=False, log=log, **kw)
    return stats, log.getvalue()


# --- recording and stats --------------------------------------------------------------------


def test_recording_is_timed_by_the_capture_clock(tmp_path):
    cam = SyntheticCamera(rate=20, frames=40, stall=(20, 0.3))  # a frame count would miss the stall
    stats, log = headless(cam, IdentityBackend(), record=tmp_path / "rec.mp4")
    images, times = decoded(tmp_path / "rec.mp4")
    assert len(images) == stats.shown > 0
    assert all(b > a for a, b in itertools.pairwise(times))
    # each recorded frame sits at its own capture time, relative to the first one recorded
    numbers = [frame_number(im) for im in images]
    assert numbers == sorted(set(numbers))
    first = cam.emitted[numbers[0]]
    for n, t in zip(numbers, times):
        assert t == pytest.approx(cam.emitted[n] - first, abs=0.02)
    assert max(np.diff(times)) > 0.3  # the stall is in the file, not smoothed away
    assert "saved" in log and f"{stats.shown} shown" in log


def test_file_input_plays_at_its_own_rate_and_reports_stats(tmp_path, tiny_backend):
    clip = make_clip(tmp_path / "clip.mp4", frames=24, fps=24)
    start = time.monotonic()
    stats, log = headless(None, tiny_backend, input=clip, record=tmp_path / "out.mp4",
                          stats_every=0.3)
    elapsed = time.monotonic() - start
    images, times = decoded(tmp_path / "out.mp4")
    assert len(images) == stats.shown == stats.stylized
    assert stats.captured + stats.skipped == 24
    assert stats.captured == stats.stylized + stats.dropped
    assert elapsed >= 23 / 24  # paced like a live source, not decoded as fast as possible
    assert times[-1] < 23 / 24 + 0.1  # capture times, not decode times
    p50, p95 = stats.latency_ms()
    assert 0 < p50 <= p95
    summary = log.strip().splitlines()[-1]
    assert summary.startswith(f"live: {stats.captured} captured, {stats.stylized} stylized, "
                              f"{stats.shown} shown, {stats.dropped} dropped")
    assert "latency p50" in summary and "fps" in summary
    assert any("fps, latency" in line for line in log.splitlines()[:-1])  # periodic stats


def test_max_frames_and_duration_stop_the_run(tmp_path, tiny_backend):
    stats, _ = headless(SyntheticCamera(rate=30), tiny_backend, max_frames=5,
                        record=tmp_path / "five.mp4")
    assert stats.shown == 5
    assert len(decoded(tmp_path / "five.mp4")[0]) == 5
    # --duration counts the run's clock: here half a second of the camera's frames, read one at
    # a time as the model wants them, whatever the machine's speed (a few more are in flight)
    clock = FakeClock()
    cam = SyntheticCamera(rate=30, on_demand=True, clock=clock)
    stats, _ = headless(cam, tiny_backend, duration=0.5, clock=clock)
    assert 15 <= stats.captured <= 15 + 3 and stats.shown <= stats.captured
    assert cam.closed


def test_slow_model_drops_at_capture_and_latency_does_not_grow(tiny_backend):
    delay = 0.12  # the model manages ~8 fps; the camera gives 30
    slow = SlowBackend(tiny_backend, delay)
    short, short_log = headless(SyntheticCamera(rate=30), slow, duration=0.8)
    long, long_log = headless(SyntheticCamera(rate=30), slow, duration=3.0)
    for stats in (short, long):
        assert stats.dropped > stats.captured / 3
        assert stats.captured == stats.stylized + stats.dropped
    # queued frames would make the longer run's latency ~3x; a bounded pipeline keeps it flat
    assert long.latency_ms()[1] < 1.5 * short.latency_ms()[1] + 30
    assert long.latency_ms()[1] < 1000 * (3 * delay + 0.1)
    # under a third of the source's rate: one hint, once the speed is known (after 2 s shown)
    hints = [line for line in long_log.splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1 and "of the source's 30" in hints[0] and "CUDA GPU" in hints[0]
    assert "hint: " not in short_log


@pytest.mark.parametrize("fps, rate, height, device, says", [
    (12.0, 30, 240, "cpu", None),  # over a third of the source's rate: no hint
    (5.0, 30, 360, "cuda", "try --height 180"),  # (360/180)^2 = 4x: 20 fps
    (0.2, 30, 720, "cpu", "try --height 90"),  # nothing on the list is enough: the smallest
    (2.0, 30, 90, "cpu", "a CUDA GPU is many times faster"),  # no smaller height to suggest
])
def test_slow_hint_says_what_helps(fps, rate, height, device, says):
    hint = slow_hint(fps, rate, height, device)
    if says is None:
        assert hint is None
        return
    assert hint.startswith(f"hint: the model stylizes {fps:.1f} frames a second of the "
                           f"source's {rate}") and says in hint
    assert ("a CUDA GPU" in hint) == (device == "cpu")
    assert ("--height" in hint) == (height > 90)
    assert ("--quality fast" in hint) == (device == "cpu")
    if device == "cpu":  # already running the student: only the other advice
        assert "--quality fast" not in slow_hint(fps, rate, height, device, student=True)


def test_figures_read_dash_until_there_is_one():
    stats = LiveStats("synthetic camera", "identity", (48, 64), (48, 64))
    assert stats.line().startswith("- fps, latency - ms | ")
    assert "| - fps | latency p50 - ms, p95 - ms |" in stats.summary()
    assert stats.now()["fps"] is None and stats.now()["latency_ms"] is None
    stats.add_shown(captured=1.00, presented=1.04)  # one frame: a latency, no rate yet
    assert stats.line().startswith("- fps, latency 40 ms | ")
    stats.add_shown(captured=1.06, presented=1.09)
    assert stats.line().startswith("20.0 fps, latency 35 ms | ")
    assert "| 20.0 fps | latency p50 35 ms" in stats.summary()


def test_a_source_read_on_demand_is_read_only_when_the_model_wants_a_frame():
    slow = SlowBackend(IdentityBackend(), 0.1)  # ~10 fps from a 30 fps source
    lazy, _ = headless(SyntheticCamera(rate=30, on_demand=True), slow, max_frames=8)
    eager, _ = headless(SyntheticCamera(rate=30), slow, max_frames=8)
    # the screen is grabbed once per frame stylized (and once more for the frame cut off)
    assert lazy.captured <= lazy.stylized + 2 and lazy.dropped <= 2
    assert eager.dropped > eager.stylized  # a camera is read on, and its frames dropped


def test_camera_loss_stops_cleanly_and_keeps_the_recording(tmp_path, tiny_backend):
    cam = SyntheticCamera(rate=30, lose_after=12)
    with pytest.raises(SourceLost) as err:
        headless(cam, tiny_backend, record=tmp_path / "kept.mp4")
    message = err.value.message
    assert err.value.exit_code == 2 and "\n" not in message
    assert "disconnected after 12 frames" in message and "kept.mp4" in message
    assert len(decoded(tmp_path / "kept.mp4")[0]) == err.value.stats.shown > 0


def test_stream_through_opencv_ends_as_a_lost_camera(tmp_path, tiny_backend):
    # a file:// URL goes through the same OpenCV stream path as rtsp/http, then runs dry
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    with pytest.raises(SourceLost) as err:
        headless(None, tiny_backend, camera=clip.as_uri(), record=tmp_path / "rec.mp4")
    stats = err.value.stats
    assert stats.captured == 11 and stats.size == (48, 64)  # frame 0 told the size at open
    assert len(decoded(tmp_path / "rec.mp4")[0]) == stats.shown > 0


def test_error_in_the_model_removes_the_partial_recording(tmp_path):
    class Broken(IdentityBackend):
        calls = 0

        def __call__(self, x):
            self.calls += 1
            if self.calls > 3:  # the warm-up and two frames pass
                raise RuntimeError("model broke")
            return x

    with pytest.raises(RuntimeError, match="model broke"):
        headless(SyntheticCamera(rate=30), Broken(), record=tmp_path / "rec.mp4")
    assert list(tmp_path.iterdir()) == []


def shown_in(summary: str) -> int:
    """The number of frames shown that the summary line reports."""
    return int(summary.split(" shown")[0].rsplit(" ", 1)[-1])


def wait_for(condition, timeout: float = 60, what: str = "the condition") -> None:
    """Poll `condition()` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_into_the_take(partial: Path, proc: subprocess.Popen | None = None) -> None:
    """Wait until the take in progress (its .partial file) has started, and a few frames more."""
    wait_for(lambda: partial.exists() or proc is not None and proc.poll() is not None,
             what="the recording to start")
    time.sleep(0.5)  # FFmpeg buffers small files: their size says nothing about frames yet


@pytest.mark.skipif(sys.platform == "win32", reason="signals to itself are POSIX")
@pytest.mark.parametrize("signum", [signal.SIGINT, getattr(signal, "SIGHUP", None)],
                         ids=["ctrl-c", "hangup"])
def test_ctrl_c_and_hangup_finalize_the_recording_and_print_the_summary(
        tmp_path, tiny_model, vidgan_cli, signum):
    clip = make_clip(tmp_path / "long.mp4", frames=120, fps=12)
    out = tmp_path / "out.mp4"
    before = signal.getsignal(signum)

    def signal_once_recording():
        wait_into_the_take(tmp_path / "out.partial.mp4")
        os.kill(os.getpid(), signum)

    threading.Thread(target=signal_once_recording, daemon=True).start()
    code, _, err = vidgan_cli("live", "--input", clip, "--no-window", "--record", out,
                              "--model", tiny_model, "--backend", "torch")
    assert code == 0, err
    shown = shown_in(err)
    assert 0 < shown < 120 and len(decoded(out)[0]) == shown
    assert f"torch-cpu-fp32, {tiny_model.name} at " in err  # the summary names the model
    assert not (tmp_path / "out.partial.mp4").exists()
    assert signal.getsignal(signum) is before  # the run's handler is gone with the run


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_to_a_real_process_keeps_a_playable_recording(tmp_path, tiny_model):
    clip = make_clip(tmp_path / "long.mp4", frames=120, fps=12)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "vidgan", "live", "--input", str(clip),
                             "--no-window", "--record", str(out), "--model", str(tiny_model),
                             "--backend", "torch"], stderr=subprocess.PIPE, text=True)
    try:
        wait_into_the_take(tmp_path / "out.partial.mp4", proc)
        proc.terminate()  # SIGTERM, as `kill`, systemd or a closing session send it
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("live: ") and "saved " in err
    shown = shown_in(summary)
    assert 0 < shown < 120 and len(decoded(out)[0]) == shown
    assert not (tmp_path / "out.partial.mp4").exists()


@needs_videos
def test_the_documented_command_works(tmp_path, tiny_model):
    out = tmp_path / "out.mp4"
    run = subprocess.run([sys.executable, "-m", "vidgan", "live", "--input",
                          str(VIDEOS / "realshort.mp4"), "--no-window", "--record", str(out),
                          "--model", str(tiny_model)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    images, _ = decoded(out)
    assert images[0].shape == (240, 320, 3)
    assert f"{len(images)} shown" in run.stderr


# --- parts ----------------------------------------------------------------------------------


class ScriptedWindow:
    """Stands in for the window (show/poll/close) and presses keys through `handle_key`.

    script: {frames shown: keys}, one key per poll once that many distinct frames were shown.
    `calls` logs each show: (frames shown so far, mode, overlay, composed shape).
    """

    def __init__(self, script: dict[int, str]):
        self.script, self.calls, self.frames, self.closed = dict(script), [], 0, False
        self._last = None

    def show(self, original, stylized, state, overlay):
        self.frames += stylized is not self._last  # a redraw passes the same frame again
        self._last = stylized
        self.calls.append((self.frames, state.mode, overlay, compose(original, stylized,
                                                                      state.mode).shape))

    def poll(self, state):
        keys = self.script.get(self.frames, "")
        if keys:
            self.script[self.frames] = keys[1:]
            handle_key(ord(keys[0]), state)

    def close(self):
        self.closed = True


def test_keys_drive_a_running_session(tmp_path, tiny_backend):
    window = ScriptedWindow({3: "r", 8: "r", 10: "s", 14: "  ", 18: "q"})
    began = int(time.time())
    stats = run_live(SyntheticCamera(rate=30), Stylizer(tiny_backend), window=window,
                     record=tmp_path / "take.mp4", log=io.StringIO())
    assert stats.shown == 18 and window.closed
    # r stopped the first take after frame 3 and started a second one after frame 8, named
    # by the time it started
    assert len(decoded(tmp_path / "take.mp4")[0]) == 3
    (second,) = tmp_path.glob("take-*.mp4")
    assert len(decoded(second)[0]) == 10
    started = time.mktime(time.strptime(second.stem, "take-%Y%m%d-%H%M%S"))
    assert began <= started <= time.time()
    # the first frame is shown before there is any figure: "-", not "0"
    assert window.calls[0][2].startswith("- fps | - ms")
    recording = {n: "REC" in overlay for n, _, overlay, _ in window.calls}
    assert recording[2] and not recording[5] and recording[12]
    # s: side by side from frame 11 on; space twice: the paused frame is redrawn, marked PAUSED
    assert all((mode, shape[1]) == ("side", 128) for n, mode, _, shape in window.calls if n > 10)
    paused = [c for c in window.calls if "PAUSED" in c[2]]
    assert paused and all(n == 14 for n, *_ in paused)


def test_latest_slot_keeps_only_the_newest_frame():
    slot = LatestSlot()
    frames = [Frame(i, float(i), np.zeros((2, 2, 3), np.uint8)) for i in range(3)]
    assert slot.put(frames[0]) is False
    assert slot.put(frames[1]) is True  # frame 0 was never taken: a drop
    assert slot.take(0.01) is frames[1]
    assert slot.take(0.01) is None
    slot.put(frames[2])
    slot.close()
    assert not slot.finished
    assert slot.take(1.0) is frames[2]
    assert slot.finished
    start = time.monotonic()
    assert slot.take(1.0) is None and time.monotonic() - start < 0.5  # closed: no waiting


def test_loop_plays_the_file_again_and_again_on_time(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6, fps=30)
    clock = FakeClock()
    source = FileSource(clip, loop=True, clock=clock, sleep=clock.sleep)
    images, times = [], []
    for _ in range(15):  # two and a half passes
        images.append(source.read())
        times.append(clock.now)
    assert all(np.array_equal(im, images[i % 6]) for i, im in enumerate(images))
    assert len({im.tobytes() for im in images}) == 6
    # one frame interval everywhere, across the wraps too: no burst, no pause, nothing skipped
    assert np.allclose(np.diff(times), 1 / 30) and source.skipped == 0
    source.close()
    once = FileSource(clip, clock=clock, sleep=clock.sleep)
    read = 0
    while once.read() is not None:
        read += 1
    assert read == 6  # without loop the file ends


def test_file_source_skips_frames_it_falls_behind_on(tmp_path):
    clock = FakeClock()
    source = FileSource(make_clip(tmp_path / "c.mp4", frames=12, fps=12), clock=clock,
                        sleep=clock.sleep)
    assert (source.width, source.height, source.rate) == (64, 48, 12)
    assert source.read() is not None
    clock.sleep(0.5)  # a reader this late misses what a camera would have replaced meanwhile
    read = 1
    while source.read() is not None:
        read += 1
    # frames 1-4 (due at 1/12 .. 4/12 s) are over a frame interval late at 0.5 s; 5 on are not
    assert source.skipped == 4 and read == 8
    assert not source.lost
    source.close()


def record_take(rec: Recorder, frames: int = 3) -> Path | None:
    rec.start()
    for i in range(frames):
        rec.write(moving_square(i, 64, 48), captured=i / 30)
    return rec.stop()


def test_takes_after_the_first_are_named_by_their_start_time(tmp_path, monkeypatch):
    moment = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))  # local time, as the names use
    rec = Recorder(tmp_path / "take.mp4", 64, 48, Fraction(30), clock=lambda: moment)
    assert record_take(rec, frames=0) is None  # an empty take leaves no file ...
    saved = [record_take(rec) for _ in range(3)]  # ... and the first name waits for one
    assert [p.name for p in saved] == ["take.mp4", "take-20260304-050607.mp4",
                                       "take-20260304-050607-2.mp4"]  # two in one second
    assert [len(decoded(p)[0]) for p in saved] == [3, 3, 3]
    assert sorted(tmp_path.iterdir()) == sorted(saved)
    monkeypatch.chdir(tmp_path)
    unnamed = Recorder(None, 64, 48, Fraction(30), clock=lambda: moment)  # r without --record
    assert record_take(unnamed) == Path("vidgan-live-20260304-050607.mp4")


def test_record_onto_an_existing_file_needs_overwrite(tmp_path, tiny_model, vidgan_cli):
    clip = make_clip(tmp_path / "c.mp4", frames=6, fps=24)
    out = tmp_path / "take.mp4"
    out.write_bytes(b"an earlier take")
    args = ["--input", clip, "--no-window", "--record", out, "--model", tiny_model,
            "--backend", "torch"]
    err = cli_error(vidgan_cli, *args)
    assert f"{out} already exists; pass --overwrite" in err
    assert out.read_bytes() == b"an earlier take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "take.mp4"]
    code, _, err = vidgan_cli("live", *args, "--overwrite")
    assert code == 0, err
    assert len(decoded(out)[0]) == shown_in(err) > 0


@pytest.mark.parametrize("keys, expected", [
    ("q", ViewState(quit=True)),
    ([27], ViewState(quit=True)),
    ("Q", ViewState(quit=True)),
    ("s", ViewState(mode="side")),
    ("ss", ViewState(mode="stylized")),
    ("so", ViewState(mode="original")),
    ("f", ViewState(fullscreen=True)),
    ("ff", ViewState(fullscreen=False)),
    (" ", ViewState(paused=True)),
    ("r", ViewState(recording=True)),
    ("rr", ViewState(recording=False)),
    ("i", ViewState(overlay=False)),
    ("ii", ViewState(overlay=True)),
    ("h", ViewState(help=True)),
    ("hh", ViewState(help=False)),
    ("x", ViewState()),
    ([-1, 0x100000 | ord("s")], ViewState(mode="side")),  # no key; s with a modifier bit
])
def test_keys_change_the_view_state(keys, expected):
    state = ViewState()
    for key in keys:
        handle_key(key if isinstance(key, int) else ord(key), state)
    assert state == expected


def test_the_key_list_names_every_key():
    listed = " ".join(HELP)
    for key in KEYS:
        name = {27: "Esc", ord(" "): "space"}.get(key, chr(key))
        assert f"{name} " in listed or f"{name}," in listed, name


def test_side_by_side_shows_original_left_of_stylized():
    a, b = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 255, np.uint8)
    side = compose(a, b, "side")
    assert side.shape == (4, 12, 3) and side[:, :6].max() == 0 and side[:, 6:].min() == 255
    assert compose(a, b, "original") is a and compose(a, b, "stylized") is b


def test_window_opens_at_the_output_size_and_fits_the_screen():
    screen = (1920, 1080)
    assert window_size((320, 240), False, None, screen) == (320, 240)  # 240p: not 400x300
    assert window_size((320, 240), True, None, screen) == (640, 240)  # side by side: 2 wide
    assert window_size((1280, 720), False, None, screen) == (1280, 720)
    assert window_size((1280, 720), True, None, screen) == (1728, 486)  # shrunk to 90%
    assert window_size((960, 400), False, None, None) == (960, 400)  # --window-size 960x400
    # switching view keeps the height a resized window has now
    assert window_size((320, 240), True, 480, screen) == (1280, 480)


@pytest.mark.parametrize("view", [(1280, 800), (640, 240), (300, 400)])
def test_fit_keeps_the_aspect_and_centres_the_picture(view):
    image = np.full((240, 640, 3), (200, 100, 50), np.uint8)  # side by side at 240p: 8:3
    canvas = fit(image, view)
    assert canvas.shape == (view[1], view[0], 3)
    rows, cols = np.nonzero(canvas.max(axis=2))
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert w / h == pytest.approx(640 / 240, rel=0.02)  # never stretched to the window
    assert (w == view[0]) or (h == view[1])  # as large as fits
    assert abs(rows.min() - (view[1] - rows.max() - 1)) <= 1  # bars alike on both sides
    assert abs(cols.min() - (view[0] - cols.max() - 1)) <= 1
    assert tuple(canvas[rows.min(), cols.min()]) == (50, 100, 200)  # BGR for OpenCV
    canvas[:] = 0
    assert image.min() > 0  # a new canvas: drawing on it never marks the frame itself


def drawn_text_height(height: int) -> int:
    """Rows the overlay's first line covers in a picture `height` pixels high."""
    canvas = np.full((height, height * 16 // 9, 3), 120, np.uint8)
    draw_panel(canvas, ["Hp 12.3 fps | 40 ms"])
    rows = np.nonzero((canvas > 200).any(axis=(1, 2)))[0]
    return rows.max() - rows.min() + 1


@pytest.mark.parametrize("height, lo, hi", [(240, 11, 20), (360, 11, 20), (720, 19, 32),
                                            (1080, 25, 42)])
def test_overlay_text_is_sized_for_the_window(height, lo, hi):
    # 240p and 360p (a 6 px font before) stay readable; 720p and up grow with the window
    assert lo <= drawn_text_height(height) <= hi
    assert text_style(height)[2] == min(32, max(13, round(height * 0.035)))


def test_overlay_is_text_on_a_darkened_box_without_an_outline():
    canvas = np.full((720, 1280, 3), 120, np.uint8)
    draw_panel(canvas, ["12.3 fps | 40 ms | REC", "torch-cuda-fp16 | 1280x720 | h: keys"])
    rows, cols = np.nonzero((canvas != 120).any(axis=2))
    panel = canvas[:rows.max() + 1, :cols.max() + 1]
    # each pixel is the darkened picture (120 // 3), white text or antialiasing between them:
    # no black outline drawn wider than the text (the "doubled" look at 720p)
    assert panel.min() >= 120 // 3 and panel.max() == 255
    assert (panel == 120 // 3).mean() > 0.5
    assert cols.max() < 640 and rows.max() < 100  # a corner, not a banner


# --- user errors ----------------------------------------------------------------------------


def cli_error(vidgan_cli, *args) -> str:
    """Run `vidgan live ARGS` in-process; assert exit code 2 and one line; return the line."""
    code, _, err = vidgan_cli("live", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("args, says", [
    (["--camera", "99", "--no-window"], "cannot open camera 99; cameras that open: "),
    (["--camera", "/dev/video99", "--no-window"], "cannot open camera /dev/video99"),
    (["--camera", "rtsp://127.0.0.1:1/none", "--no-window"], "cannot open the stream rtsp://"),
    (["--camera", "http://127.0.0.1:1/cam.mjpg", "--no-window"], "cannot open the stream http://"),
    (["--camera", "webcam", "--no-window"], "is not a camera index"),
    (["--region", "0,0,10", "--no-window"], "is not X,Y,WIDTH,HEIGHT"),
    (["--region", "0,0,-5,10", "--no-window"], "needs x, y >= 0"),
    (["--input", "missing.mp4", "--no-window"], "missing.mp4 does not exist"),
    (["--no-window"], "give one source, not none"),
    (["--camera", "0", "--screen", "--no-window"], "give one source, not --camera and --screen"),
    (["--capture-size", "big", "--camera", "0", "--no-window"], "is not WIDTHxHEIGHT"),
    (["--camera", "0", "--loop", "--no-window"], "--loop applies to --input"),
    (["--input", "missing.mp4", "--window-size", "big"], "--window-size 'big' is not WIDTHxHEIGHT"),
    (["--input", "missing.mp4", "--no-window", "--window-size", "640x360"], "are for the window"),
    (["--input", "missing.mp4", "--no-window", "--no-overlay"], "are for the window"),
])
def test_user_errors_are_one_line(vidgan_cli, args, says):
    assert says in cli_error(vidgan_cli, *args)


def test_nonexistent_camera_lists_the_ones_that_open(vidgan_cli):
    listing = ", ".join(map(str, available_cameras())) or "none"
    assert f"cameras that open: {listing}\n" in cli_error(vidgan_cli, "--camera", "99")


def test_bad_input_file(vidgan_cli, tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    err = cli_error(vidgan_cli, "--input", tmp_path / "notes.txt", "--no-window")
    assert "not a video file" in err


def test_serve_on_a_port_in_use(vidgan_cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = cli_error(vidgan_cli, "--input", clip, "--no-window", "--serve", port)
    assert f"cannot serve on 127.0.0.1:{port}" in err and "another port" in err


def test_serve_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)  # this machine only, by default
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("localhost:0") == ("localhost", 0)
    for bad in ("http", "host:", "[::1]:8080", "70000"):
        with pytest.raises(VidganError, match="is not \\[HOST:\\]PORT"):
            parse_address(bad)


def test_region_outside_the_monitor():
    monitors = [{"left": 0, "top": 0, "width": 3840, "height": 1080},
                {"left": 0, "top": 0, "width": 1920, "height": 1080},
                {"left": 1920, "top": 0, "width": 1920, "height": 1080}]
    assert screen_box(monitors, 2, (100, 50, 640, 360)) == {
        "left": 2020, "top": 50, "width": 640, "height": 360}
    with pytest.raises(VidganError, match="lies outside monitor 1 \\(1920x1080\\)"):
        screen_box(monitors, 1, (1600, 0, 640, 360))
    with pytest.raises(VidganError, match="no monitor 3; monitors: 0 \\(3840x1080\\), 1"):
        screen_box(monitors, 3, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="$DISPLAY matters on Linux only")
def test_no_display(monkeypatch, vidgan_cli, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    clip = make_clip(tmp_path / "c.mp4")
    err = cli_error(vidgan_cli, "--input", clip)
    assert "no display for the window" in err and "--no-window" in err
    assert "no screen to capture" in cli_error(vidgan_cli, "--screen", "--no-window")


def test_virtual_cam_without_pyvirtualcam(monkeypatch, vidgan_cli, tmp_path):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # as if not installed
    clip = make_clip(tmp_path / "c.mp4")
    err = cli_error(vidgan_cli, "--input", clip, "--no-window", "--virtual-cam")
    assert "pip install 'vidgan[virtualcam]'" in err


def test_virtual_cam_without_its_driver(vidgan_cli, tmp_path, tiny_model):
    pyvirtualcam = pytest.importorskip("pyvirtualcam", reason="the virtualcam extra is not installed")
    try:
        pyvirtualcam.Camera(64, 48, 12).close()
        pytest.skip("this machine has a virtual camera driver")
    except RuntimeError:
        pass
    clip = make_clip(tmp_path / "c.mp4")
    err = cli_error(vidgan_cli, "--input", clip, "--no-window", "--virtual-cam",
                    "--model", tiny_model)
    expected = "v4l2loopback" if sys.platform.startswith("linux") else "OBS"
    assert "no virtual camera driver" in err and expected in err


# --- serving the stream over HTTP ---------------------------------------------------------


def mjpeg_frames(url: str, count: int, then=None) -> list[np.ndarray]:
    """Up to `count` frames of the multipart MJPEG stream at `url` (fewer if it ends), read
    with http.client and each decoded by OpenCV as a JPEG; then(): called after, connected."""
    import cv2

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    frames = []
    while len(frames) < count:
        line = response.readline()
        if not line:
            break  # the run ended
        if line.strip() != f"--{BOUNDARY}".encode():
            continue  # the blank line that ends the previous part
        headers = dict(response.readline().decode().strip().split(": ", 1) for _ in range(2))
        assert headers["Content-Type"] == "image/jpeg" and response.readline() == b"\r\n"
        jpeg = response.read(int(headers["Content-Length"]))
        assert jpeg[:2] == b"\xff\xd8"  # a JPEG's start-of-image marker
        frames.append(cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR),
                                   cv2.COLOR_BGR2RGB))
    if then is not None:
        then()
    conn.close()
    return frames


def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a plain GET."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    result = response.status, response.getheader("Content-Type"), response.read()
    conn.close()
    return result


def test_served_stream_is_stylized_jpeg_frames_for_several_viewers(tmp_path, tiny_backend):
    from vidgan.runtime.stylizer import Stylizer

    clip = make_clip(tmp_path / "c.mp4", frames=36, width=128, height=96, fps=24)
    inputs = [frame.image for frame in iter(FileSource(clip)._frames)]
    stylized = [Stylizer(tiny_backend)(im)[0].numpy() for im in inputs]
    server = StreamServer("127.0.0.1:0")
    seen, other = {}, {}

    def look_around():  # while the stream runs: the page, one frame, a wrong path, the stats
        other.update(page=get(server.url), frame=get(server.url + "frame.jpg"),
                     missing=get(server.url + "nope"))
        wait_for(lambda: json.loads(get(server.url + "stats.json")[2]).get("shown"),
                 what="stats (updated twice a second)")
        other["stats"] = get(server.url + "stats.json")

    def watch(name: str, count: int, then=None):
        seen[name] = mjpeg_frames(server.url + "stream.mjpg", count, then)

    viewers = [threading.Thread(target=watch, args=args) for args in
               (("a", 100), ("b", 100), ("leaves early", 2, look_around))]
    for viewer in viewers:
        viewer.start()
    wait_for(lambda: server.viewers == 3, what="three viewers")
    stats, log = headless(FileSource(clip), tiny_backend, serve=server)
    for viewer in viewers:
        viewer.join(timeout=30)
    assert f"serving {server.url} (the stream alone: {server.url}stream.mjpg)" in log
    # one viewer leaving stops nothing: the file played to its end, every frame was shown
    assert stats.captured + stats.skipped == 36 and stats.shown == stats.stylized
    assert len(seen["leaves early"]) == 2 and min(len(seen["a"]), len(seen["b"])) >= 3
    for image in seen["a"] + seen["b"] + seen["leaves early"]:
        assert image.shape == (96, 128, 3)
        # a stylized frame, within JPEG's error (~8 grey levels on this busy texture), and far
        # from every input frame (~75)
        assert min(np.abs(image.astype(int) - s).mean() for s in stylized) < 12
        assert min(np.abs(image.astype(int) - i).mean() for i in inputs) > 40
    assert server.frames.encoded <= server.frames.published  # each frame encoded once at most
    assert server.frames.encoded < sum(len(v) for v in seen.values())
    status, kind, page = other["page"]
    assert (status, kind) == (200, "text/html; charset=utf-8") and b"/stream.mjpg" in page
    status, kind, body = other["stats"]
    figures = json.loads(body)
    assert (status, kind) == (200, "application/json") and figures["viewers"] >= 2
    assert figures["shown"] > 0 and figures["source"] == "c.mp4"
    assert other["frame"][:2] == (200, "image/jpeg") and other["frame"][2][:2] == b"\xff\xd8"
    assert other["missing"][0] == 404


def test_an_ffmpeg_client_opens_the_stream(tmp_path, tiny_backend):
    # FFmpeg's own HTTP client and mpjpeg demuxer: what OBS's Media Source, ffplay and VLC use
    server = StreamServer("127.0.0.1:0")
    got = []

    def play():
        with av.open(server.url + "stream.mjpg", timeout=30) as container:
            assert container.format.name == "mpjpeg"
            for frame in container.decode(video=0):
                got.append(frame.to_ndarray(format="rgb24"))
                if len(got) == 3:
                    break

    player = threading.Thread(target=play)
    player.start()
    wait_for(lambda: server.viewers == 1, what="FFmpeg to connect")
    headless(SyntheticCamera(rate=30, frames=30), tiny_backend, serve=server)
    player.join(timeout=30)
    assert len(got) == 3 and got[0].shape == (48, 64, 3)


def test_a_stalled_viewer_does_not_slow_the_pipeline():
    """Margin: a viewer that stops reading costs the pipeline at most 2 more dropped frames of
    45 and 20 ms more median latency than the same run with nobody watching."""
    def camera():
        return NoiseCamera(rate=30, frames=45, width=320, height=240)

    alone, _ = headless(camera(), IdentityBackend())
    server = StreamServer("127.0.0.1:0")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    address = urlsplit(server.url)
    stalled.connect((address.hostname, address.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # ... and never reads
    fast = []
    reader = threading.Thread(target=lambda: fast.extend(
        mjpeg_frames(server.url + "stream.mjpg", 1000)))
    reader.start()
    wait_for(lambda: server.viewers == 2, what="two viewers")
    watched, _ = headless(camera(), IdentityBackend(), serve=server)
    reader.join(timeout=30)
    stalled.settimeout(10)
    received = b"".join(iter(lambda: stalled.recv(1 << 16), b""))
    stalled.close()
    assert watched.dropped <= alone.dropped + 2
    assert watched.latency_ms()[0] <= alone.latency_ms()[0] + 20
    assert len(fast) >= watched.shown // 2  # the reading viewer kept up ...
    assert received.count(f"--{BOUNDARY}".encode()) < watched.shown // 2  # ... the other did not


class QuitWhen:
    """Stands in for the window: shows nothing and quits once `event` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def show(self, original, stylized, state, overlay):
        pass

    def poll(self, state):
        state.quit = state.quit or self.event.is_set()

    def close(self):
        pass


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                    "chromium)")
def test_the_page_shows_the_stylized_stream_in_headless_chromium(tmp_path, tiny_backend):
    import cv2

    clip = make_clip(tmp_path / "c.mp4", frames=24, width=320, height=240, fps=24)
    server = StreamServer("127.0.0.1:0")
    shot, done, browser = tmp_path / "page.png", threading.Event(), {}

    def browse():
        try:
            browser["run"] = subprocess.run(
                [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                 f"--screenshot={shot}", "--window-size=640,560", server.url],
                capture_output=True, text=True, timeout=90, check=False)
        finally:
            done.set()

    threading.Thread(target=browse).start()
    run_live(FileSource(clip, loop=True), Stylizer(tiny_backend), window=QuitWhen(done),
             serve=server, log=io.StringIO())
    assert shot.exists(), browser["run"].stderr[-2000:]
    page = cv2.imread(str(shot))
    assert page.shape[:2] == (560, 640)
    picture = page[:420]  # above the stats lines
    colours = len(np.unique(picture.reshape(-1, 3), axis=0))
    # the frame, not the page's empty #111 background or a broken-image icon
    assert colours > 1000 and picture.std() > 20, f"{colours} colours"


# --- real devices (only where this machine has them) ---------------------------------------


@pytest.fixture(scope="module")
def x_display():
    """A private X server (Xvfb, 1280x800) for the window and screen tests, with openbox as its
    window manager where installed (fullscreen needs one); yields its $DISPLAY."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the X server tests are for Linux")
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()  # written once the server accepts connections
    if not number:
        xvfb.wait()
        pytest.skip("Xvfb did not start")
    display, wm = f":{number}", None
    if shutil.which("openbox") and XClient.available():
        wm = subprocess.Popen(["openbox"], env={**os.environ, "DISPLAY": display},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(XClient(display).window_manager, 30, "openbox to start")
    yield display
    for proc in (wm, xvfb):
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


class XClient:
    """Uses windows on an X display as a person would (python-xlib): finds one by its title,
    measures and photographs it, presses keys (XTEST) and closes it as its close button or
    Alt+F4 does (the window manager's WM_DELETE_WINDOW message)."""

    def __init__(self, display: str):
        from Xlib import display as xdisplay

        self.display = xdisplay.Display(display)
        self.root = self.display.screen().root

    @staticmethod
    def available() -> bool:
        try:
            import Xlib  # noqa: F401
        except ImportError:
            return False
        return True

    def window_manager(self) -> bool:
        from Xlib import X

        check = self.display.intern_atom("_NET_SUPPORTING_WM_CHECK")
        return self.root.get_full_property(check, X.AnyPropertyType) is not None

    def find(self, title: str):
        from Xlib.error import XError

        def walk(window):
            try:
                if window.get_wm_name() == title:
                    return window
                children = window.query_tree().children
            except XError:  # a window that went away meanwhile
                return None
            return next((w for w in map(walk, children) if w is not None), None)

        return walk(self.root)

    def size(self, window) -> tuple[int, int]:
        geometry = window.get_geometry()
        return geometry.width, geometry.height

    def grab(self, window) -> np.ndarray:
        """What the window shows, RGB (H, W, 3)."""
        from Xlib import X

        w, h = self.size(window)
        raw = window.get_image(0, 0, w, h, X.ZPixmap, 0xFFFFFFFF).data  # BGRX
        return np.frombuffer(raw, np.uint8).reshape(h, w, 4)[..., 2::-1]

    def key(self, window, char: str) -> None:
        from Xlib import XK, X
        from Xlib.ext import xtest

        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        code = self.display.keysym_to_keycode(XK.string_to_keysym(char))
        for event in (X.KeyPress, X.KeyRelease):
            xtest.fake_input(self.display, event, code)
        self.display.sync()

    def close(self, window) -> None:
        from Xlib import X
        from Xlib.protocol.event import ClientMessage

        protocols = self.display.intern_atom("WM_PROTOCOLS")
        delete = self.display.intern_atom("WM_DELETE_WINDOW")
        window.send_event(ClientMessage(window=window, client_type=protocols,
                                        data=(32, [delete, X.CurrentTime, 0, 0, 0])))
        self.display.sync()


def shade(image: np.ndarray, rows: slice) -> float:
    """Brightness of the window's left edge over `rows`, relative to the same rows 256 px to
    the right (4 periods of the test clip's texture): ~1 on the bare picture, ~0.5 under the
    overlay's darkened box; NaN (false in any comparison) while no frame is shown."""
    reference = image[rows, 260:316].mean()
    return float(image[rows, 4:60].mean() / reference) if reference > 30 else float("nan")


def test_real_window(x_display, tmp_path, tiny_model):
    """The window as a streamer uses it, in a real `vidgan live` process."""
    pytest.importorskip("Xlib", reason="python-xlib (in the dev extra) drives the window")
    clip = make_clip(tmp_path / "c.mp4", frames=48, width=320, height=240, fps=24)
    out = tmp_path / "take.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "vidgan", "live", "--input", str(clip),
                             "--loop", "--record", str(out), "--model", str(tiny_model),
                             "--backend", "torch"], env={**os.environ, "DISPLAY": x_display},
                            stderr=subprocess.PIPE, text=True)
    x, found = XClient(x_display), []
    try:
        wait_for(lambda: found.append(x.find("vidgan live")) or found[-1] or proc.poll(),
                 what="the window")
        window = found[-1]
        assert window is not None, proc.communicate()[1]
        # at the output's size (not Qt's 400x300), with no toolbar or status bar around it
        assert x.size(window) == (320, 240)
        overlay = slice(4, 36)  # the two overlay lines at 240p
        wait_for(lambda: shade(x.grab(window), overlay) < 0.65, 30, "the overlay")
        x.key(window, "i")  # hides it: a clean picture for window capture
        wait_for(lambda: shade(x.grab(window), overlay) > 0.8, 30, "the overlay to go")
        x.key(window, "h")  # the key list
        wait_for(lambda: shade(x.grab(window), slice(100, 140)) < 0.65, 30, "the key list")
        x.key(window, "h")
        wait_for(lambda: shade(x.grab(window), slice(100, 140)) > 0.8, 30, "the list to go")
        x.key(window, "s")  # side by side: twice as wide, same height
        wait_for(lambda: x.size(window) == (640, 240), 30, "the side by side window")
        if x.window_manager():  # without one, X has no fullscreen
            x.key(window, "f")
            wait_for(lambda: x.size(window) == (1280, 800), 30, "fullscreen")
            wait_for(lambda: picture_box(x.grab(window))[1] < 600, 30, "a fitted frame")
            box = picture_box(x.grab(window))  # not stretched: black bars above and below
            assert box == pytest.approx((1280, 480), abs=4)
        x.close(window)  # as its close button or Alt+F4: like q, the take is kept
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("live: ") and "Traceback" not in err
    assert "QFontDatabase" not in err  # Qt's font warnings, on every start before
    assert len(decoded(out)[0]) == shown_in(summary) > 0


def picture_box(image: np.ndarray) -> tuple[int, int]:
    """(w, h) of the part of a screenshot that is not black bars."""
    rows, cols = np.nonzero(image.max(axis=2) > 16)
    return cols.max() - cols.min() + 1, rows.max() - rows.min() + 1


def test_real_screen_capture(x_display, monkeypatch, tiny_backend, vidgan_cli):
    monkeypatch.setenv("DISPLAY", x_display)
    slow = SlowBackend(tiny_backend, 0.1)  # ~10 fps: the screen is not grabbed 30 times a second
    stats, _ = headless(None, slow, screen=True, region="0,0,64,48", max_frames=5)
    assert stats.shown == 5 and stats.size == (48, 64)
    assert stats.captured <= stats.stylized + 2 and stats.dropped <= 2
    assert "lies outside monitor 1" in cli_error(vidgan_cli, "--region", "0,0,100000,64",
                                                 "--no-window")


@pytest.mark.skipif(not available_cameras(), reason="no camera opens on this machine")
def test_real_camera(tiny_backend):
    index = available_cameras()[0]
    stats, _ = headless(None, tiny_backend, camera=str(index), capture_size="640x480",
                        max_frames=3, height=64)
    assert stats.shown == 3 and stats.processing[0] == 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_two_frames_in_flight_on_cuda_come_back_whole_and_in_order(tiny_model):
    from vidgan.runtime.backends import load_backend
    from vidgan.runtime.stylizer import Stylizer

    backend = load_backend(tiny_model, "torch", "cuda", "fp32")
    inference = Inference(Stylizer(backend))
    assert inference.max_in_flight == 2
    cam = SyntheticCamera(rate=1000, frames=16, width=320, height=240)
    frames = [Frame(i, 0.0, cam.read()) for i in range(16)]
    done, in_flight = [], []
    for frame in frames:
        if len(in_flight) == inference.max_in_flight:
            in_flight[0].wait()
            done.append(in_flight.pop(0))
        in_flight.append(inference.submit(frame))
    for p in in_flight:
        p.wait()
        done.append(p)
    for frame, p in zip(frames, done, strict=True):
        assert p.frame is frame and p.output.is_pinned()
        assert torch.equal(p.output, Stylizer(backend)(frame.image)[0].cpu())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_live_on_cuda_records_every_frame_shown(tmp_path, tiny_model):
    stats, _ = headless(SyntheticCamera(rate=30, frames=45, width=320, height=240), "torch",
                        model=tiny_model, device="cuda", record=tmp_path / "gpu.mp4")
    assert stats.backend.startswith("torch-cuda")
    # whether the GPU keeps up is measured by benchmarks/gpu_check.py, not asserted here
    assert stats.captured == 45 == stats.stylized + stats.dropped
    assert len(decoded(tmp_path / "gpu.mp4")[0]) == stats.shown > 0
