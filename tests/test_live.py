"""`vidgan live`: sources, the latest-frame pipeline, recording, stats, keys and user errors.

Headless and on the CPU: frames come from generated clips and from `SyntheticCamera`, a real
source that produces numbered frames at a given rate. The real camera and screen tests run only
where this machine has one.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import VIDEOS, make_clip, moving_square, needs_videos

from vidgan.errors import VidganError
from vidgan.live import SourceLost, run_live
from vidgan.live.pipeline import Frame, Inference, LatestSlot
from vidgan.live.sinks import Recorder, ViewState, compose, handle_key
from vidgan.live.sources import FileSource, available_cameras, screen_box

MARK = 16  # side of the top-left block whose grey level numbers the frame
STEP = 5  # grey levels between consecutive frame numbers: survives h264 at crf 18


class SyntheticCamera:
    """A source that produces numbered frames at `rate` per second, on time, like a camera.

    Frame i shows a moving square and, top left, a block of grey level STEP * i; `emitted[i]`
    is the monotonic time it was delivered. frames=None runs until closed; lose_after=N acts
    like a camera unplugged after N frames; stall=(N, s) delays frame N and all after it by s
    seconds, like a camera that hiccups.
    """

    def __init__(self, rate: float = 30, frames: int | None = None, width: int = 64,
                 height: int = 48, lose_after: int | None = None,
                 stall: tuple[int, float] = (0, 0.0)):
        self.rate, self.frames, self.lose_after = Fraction(rate), frames, lose_after
        self.stall = stall
        self.width, self.height = width, height
        self.name = "synthetic camera"
        self.lost, self.skipped = False, 0
        self.emitted: list[float] = []
        self.closed = False

    def read(self) -> np.ndarray | None:
        i = len(self.emitted)
        if self.lose_after is not None and i >= self.lose_after:
            self.lost = True
            return None
        if self.frames is not None and i >= self.frames:
            return None
        if i:
            due = self.emitted[0] + i / float(self.rate) + (self.stall[1] if i >= self.stall[0] else 0)
            time.sleep(max(0.0, due - time.monotonic()))
        image = moving_square(i, self.width, self.height)
        image[:MARK, :MARK] = STEP * i % 256
        self.emitted.append(time.monotonic())
        return image

    def close(self) -> None:
        self.closed = True


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
    from vidgan.backends import load_backend

    return load_backend(tiny_model, "torch", "cpu")


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Frames (RGB) and their timestamps in seconds."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def frame_number(image: np.ndarray) -> int:
    return round(float(image[2:MARK - 2, 2:MARK - 2].mean()) / STEP)


def headless(source, backend, **kw):
    log = io.StringIO()
    stats = run_live(source, backend=backend, window=False, log=log, **kw)
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
    start = time.monotonic()
    cam = SyntheticCamera(rate=30)
    headless(cam, tiny_backend, duration=0.5)
    assert 0.5 <= time.monotonic() - start < 3
    assert cam.closed


def test_slow_model_drops_at_capture_and_latency_does_not_grow(tiny_backend):
    delay = 0.08  # the model manages ~12 fps; the camera gives 30
    slow = SlowBackend(tiny_backend, delay)
    short, _ = headless(SyntheticCamera(rate=30), slow, duration=0.8)
    long, _ = headless(SyntheticCamera(rate=30), slow, duration=2.4)
    for stats in (short, long):
        assert stats.dropped > stats.captured / 3
        assert stats.captured == stats.stylized + stats.dropped
    # queued frames would make the longer run's latency ~3x; a bounded pipeline keeps it flat
    assert long.latency_ms()[1] < 1.5 * short.latency_ms()[1] + 30
    assert long.latency_ms()[1] < 1000 * (3 * delay + 0.1)


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


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to itself is POSIX")
def test_ctrl_c_finalizes_the_recording_and_prints_the_summary(tmp_path, tiny_model, vidgan_cli):
    clip = make_clip(tmp_path / "long.mp4", frames=120, fps=12)
    out = tmp_path / "out.mp4"

    def press_ctrl_c_once_recording():
        deadline = time.monotonic() + 60
        while not (tmp_path / "out.partial.mp4").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c_once_recording, daemon=True).start()
    code, _, err = vidgan_cli("live", "--input", clip, "--no-window", "--record", out,
                              "--model", tiny_model, "--backend", "torch")
    assert code == 0, err
    shown = int(err.split(" shown")[0].rsplit(" ", 1)[-1])
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
    stats = run_live(SyntheticCamera(rate=30), backend=tiny_backend, window=window,
                     record=tmp_path / "take.mp4", log=io.StringIO())
    assert stats.shown == 18 and window.closed
    # r stopped the first take after frame 3 and started a second one after frame 8
    assert len(decoded(tmp_path / "take.mp4")[0]) == 3
    assert len(decoded(tmp_path / "take-2.mp4")[0]) == 10
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


def test_file_source_skips_frames_it_falls_behind_on(tmp_path):
    source = FileSource(make_clip(tmp_path / "c.mp4", frames=12, fps=12))
    assert (source.width, source.height, source.rate) == (64, 48, 12)
    assert source.read() is not None
    time.sleep(0.5)  # a reader this late misses what a camera would have replaced meanwhile
    read = 1
    while source.read() is not None:
        read += 1
    assert 4 <= source.skipped <= 7 and read + source.skipped == 12
    assert not source.lost
    source.close()


def test_recorder_takes_get_new_names_and_empty_takes_leave_no_file(tmp_path):
    rec = Recorder(tmp_path / "take.mp4", 64, 48, Fraction(30))
    for _ in range(2):
        rec.start()
        for i in range(3):
            rec.write(moving_square(i, 64, 48), captured=i / 30)
        rec.stop()
    assert rec.saved == [tmp_path / "take.mp4", tmp_path / "take-2.mp4"]
    assert [len(decoded(p)[0]) for p in rec.saved] == [3, 3]
    rec.start()
    assert rec.stop() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take-2.mp4", "take.mp4"]


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
    ("x", ViewState()),
    ([-1, 0x100000 | ord("s")], ViewState(mode="side")),  # no key; s with a modifier bit
])
def test_keys_change_the_view_state(keys, expected):
    state = ViewState()
    for key in keys:
        handle_key(key if isinstance(key, int) else ord(key), state)
    assert state == expected


def test_side_by_side_shows_original_left_of_stylized():
    a, b = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 255, np.uint8)
    side = compose(a, b, "side")
    assert side.shape == (4, 12, 3) and side[:, :6].max() == 0 and side[:, 6:].min() == 255
    assert compose(a, b, "original") is a and compose(a, b, "stylized") is b


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


# --- real devices (only where this machine has them) ---------------------------------------


def has_display() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    if not os.environ.get("DISPLAY"):
        return False
    from mss.exception import ScreenShotError

    from vidgan.live.sources import mss_class

    try:
        with mss_class()():
            return True
    except ScreenShotError:
        return False


@pytest.mark.skipif(not has_display(), reason="no display to capture ($DISPLAY unset or unreachable)")
def test_real_screen_capture(tiny_backend, vidgan_cli):
    stats, _ = headless(None, tiny_backend, screen=True, region="0,0,64,48", max_frames=3)
    assert stats.shown == 3 and stats.size == (48, 64)
    assert "lies outside monitor 1" in cli_error(vidgan_cli, "--region", "0,0,100000,64",
                                                 "--no-window")


@pytest.mark.skipif(not has_display(), reason="no display for a window ($DISPLAY unset or unreachable)")
def test_real_window(tmp_path, tiny_model):
    # in a fresh process: this one may have loaded PyAV before OpenCV (see vidgan/live/__init__)
    code = """if True:
        import numpy as np
        from vidgan.live.sinks import ViewState, Window
        window, state, image = Window(), ViewState(), np.zeros((48, 64, 3), np.uint8)
        for mode in ("stylized", "original", "side", "stylized"):
            state.mode, state.fullscreen = mode, mode == "side"
            window.show(image, image, state, "12.0 fps | 40 ms")
            window.poll(state)
        window.close()
        print("shown", state.quit)
    """
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=False)
    assert shown.stdout.strip() == "shown False", shown.stderr
    clip = make_clip(tmp_path / "c.mp4", frames=24)
    run = subprocess.run([sys.executable, "-m", "vidgan", "live", "--input", str(clip),
                          "--max-frames", "4", "--model", str(tiny_model)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and " 4 shown" in run.stderr, run.stderr


@pytest.mark.skipif(not available_cameras(), reason="no camera opens on this machine")
def test_real_camera(tiny_backend):
    index = available_cameras()[0]
    stats, _ = headless(None, tiny_backend, camera=str(index), capture_size="640x480",
                        max_frames=3, height=64)
    assert stats.shown == 3 and stats.processing[0] == 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_two_frames_in_flight_on_cuda_come_back_whole_and_in_order(tiny_model):
    from vidgan.backends import load_backend
    from vidgan.frames import Stylizer

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
    assert len(decoded(tmp_path / "gpu.mp4")[0]) == stats.shown >= 40
