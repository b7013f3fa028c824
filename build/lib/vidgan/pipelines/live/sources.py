"""Live sources: a camera or stream (OpenCV), the screen (mss), or a video file played as live.

Every source has the same small interface (`Source`): `read()` blocks until the next frame and
returns it as RGB uint8 (H, W, 3), or None when the source has ended; `lost` then says whether
it ended because the device went away. The pipeline calls `read()` in its capture thread, so a
source may open its per-thread resources (mss) on the first call. A source that is `on_demand`
is read only when the model is ready for a frame (a screen grab costs CPU and nobody waits for
it); the others are read as fast as they deliver, since a camera's frames pile up otherwise.

Each source registers the function that opens it from the live command's options (`@source`):
a new source is a class and its opener here, an option of `vidgan live` to pick it, and a test.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from vidgan.core.errors import VidganError
from vidgan.runtime.video import VideoReader, probe

PROBE_INDICES = range(10)
MJPG_MIN_HEIGHT = 720  # uncompressed YUYV over USB 2 tops out around 10 fps at 720p
OPEN_TIMEOUT_MS = 5000


class Source(Protocol):
    name: str  # for messages and the overlay: "camera 0", "screen 1", "realshort.mp4"
    width: int
    height: int
    rate: Fraction  # nominal frames per second
    lost: bool  # True once read() returned None because the device disconnected
    skipped: int  # frames the source itself dropped because it fell behind (file source)
    on_demand: bool  # read only when a frame is wanted (screen), not as fast as it delivers

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceEntry:
    name: str
    usage: str  # how the user picks it, for messages: "--input FILE"
    chosen: Callable[[dict], bool]  # whether the options given pick this source
    open: Callable[..., Source]  # open(**options) -> Source; refuses options it doesn't take


SOURCES: dict[str, SourceEntry] = {}  # filled where each source is defined (@source below)


def source(name: str, usage: str, chosen: Callable[[dict], bool]):
    """Register a function that opens a source from the live command's options."""
    def add(opener):
        SOURCES[name] = SourceEntry(name, usage, chosen, opener)
        return opener

    return add


def open_source(**options) -> Source:
    """The one source the options name (None and False mean not given): camera (index, device
    path or rtsp/http URL; capture_size "WxH" and fps asked of it), screen (monitor: mss
    numbering, 1 = primary, 0 = all; region "X,Y,W,H" on it; fps: the most grabs per second,
    default 30), input (a video file played as live; loop: again and again), or any other
    registered source."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    chosen = [entry for entry in SOURCES.values() if entry.chosen(given)]
    if len(chosen) != 1:
        what = " and ".join(e.usage.split()[0] for e in chosen) if chosen else "none"
        usages = [e.usage for e in SOURCES.values()]
        raise VidganError(f"give one source, not {what}: {', '.join(usages[:-1])} or {usages[-1]}")
    return chosen[0].open(**given)


def _not_for_file(options: dict) -> None:
    if options.get("loop"):
        raise VidganError("--loop applies to --input: a file played as live, again and again")


def parse_size(text: str | None, option: str = "--capture-size") -> tuple[int, int] | None:
    """"1280x720" -> (1280, 720); `option` names the flag in errors."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VidganError(f"{option} {text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if w <= 0 or h <= 0:
        raise VidganError(f"{option} {text!r} needs a positive width and height")
    return w, h


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """"X,Y,W,H" -> (x, y, w, h) in pixels."""
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise VidganError(f"--region {text!r} is not X,Y,WIDTH,HEIGHT in pixels, "
                          "e.g. 0,0,1280,720") from None
    if w < 2 or h < 2 or x < 0 or y < 0:
        raise VidganError(f"--region {text!r} needs x, y >= 0 and a width and height of at "
                          "least 2")
    return x, y, w, h


# --- camera / stream ----------------------------------------------------------------------


@source("camera", "--camera N|/dev/videoX|URL", lambda o: "camera" in o)
def _open_camera(camera: str, capture_size: str | None = None, fps: float | None = None,
                 **others) -> CameraSource:
    _not_for_file(others)
    return CameraSource(camera, parse_size(capture_size), fps)


class CameraSource:
    """An OpenCV capture device: index, device path or network stream (rtsp/http)."""

    def __init__(self, spec: str, size: tuple[int, int] | None = None, fps: float | None = None):
        self.lost, self.skipped, self.on_demand = False, 0, False
        target = _camera_target(spec)
        self.name = f"camera {spec}" if isinstance(target, int) else spec
        with _quiet_opencv():
            self._cap = _open_capture(cv2, target)
            if self._cap is None:
                raise VidganError(_not_opened_message(spec, target))
            _configure(cv2, self._cap, size, fps)
            ok, first = self._cap.read()
        if not ok:
            self._cap.release()
            raise VidganError(f"{self.name} opened but delivered no frame; is another program "
                              "using it?")
        self.height, self.width = first.shape[:2]  # what it delivers, whatever was asked
        reported = self._cap.get(cv2.CAP_PROP_FPS)  # 0 where the device does not say
        self.rate = Fraction(reported if 0 < reported < 1000 else fps or 30).limit_denominator(1001)
        self._cv2 = cv2

    def read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok:
            self.lost = True  # a camera does not end by itself
            return None
        return self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


def _camera_target(spec: str) -> int | str:
    if spec.isdigit():
        return int(spec)
    if "://" in spec:
        return spec
    if spec.startswith("/dev/"):
        return spec
    if Path(spec).is_file():
        raise VidganError(f"--camera {spec}: that is a file; play a video file with --input")
    raise VidganError(f"--camera {spec!r} is not a camera index (0, 1, ...), a device path "
                      "(/dev/video0) or a stream URL (rtsp://..., http://...)")


def _open_capture(cv2, target: int | str):
    if isinstance(target, str) and "://" in target:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(target)
    if cap.isOpened():
        return cap
    cap.release()
    return None


def _configure(cv2, cap, size: tuple[int, int] | None, fps: float | None) -> None:
    """Ask the device for a size and rate; MJPG at 720p and above when it offers it.

    The pixel format goes first: on V4L2, setting it after the size can reset the size.
    A device that lacks a format or property refuses the set and keeps its own; the size it
    really delivers is read from the first frame.
    """
    if size and size[1] >= MJPG_MIN_HEIGHT:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
    if size:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    if fps:
        cap.set(cv2.CAP_PROP_FPS, fps)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver keeps one frame: no stale backlog


def _not_opened_message(spec: str, target: int | str) -> str:
    if isinstance(target, str) and "://" in target:
        return f"cannot open the stream {spec}: check the URL and that the server is reachable"
    found = available_cameras()
    listing = ", ".join(str(i) for i in found) if found else "none"
    return f"cannot open camera {spec}; cameras that open: {listing}"


def available_cameras(indices=PROBE_INDICES) -> list[int]:
    """Camera indices that open, probed quickly (on Linux only those with a /dev/videoN)."""

    found = []
    with _quiet_opencv():
        for i in indices:
            if sys.platform.startswith("linux") and not Path(f"/dev/video{i}").exists():
                continue
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    return found


@contextmanager
def _quiet_opencv():
    """Silence OpenCV's and its FFmpeg's warnings while probing: the user gets our one line."""

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read by OpenCV at the first open
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


# --- screen -------------------------------------------------------------------------------


@source("screen", "--screen (--monitor N, --region X,Y,W,H)",
        lambda o: bool(o.keys() & {"screen", "monitor", "region"}))
def _open_screen(screen: bool = True, monitor: int | None = None, region: str | None = None,
                 fps: float | None = None, capture_size: str | None = None,
                 **others) -> ScreenSource:
    _not_for_file(others)
    if capture_size:
        raise VidganError("--capture-size applies to --camera; use --region to capture part of "
                          "the screen")
    return ScreenSource(monitor, parse_region(region), fps or 30)


class ScreenSource:
    """Screen or game capture through mss: a monitor or a region of it, at most `fps` grabs a
    second, each when the model is ready for it (so the grab is fresh and costs no CPU while
    the model is busy)."""

    def __init__(self, monitor: int | None = None, region: tuple[int, int, int, int] | None = None,
                 fps: float = 30):
        from mss.exception import ScreenShotError

        self._mss = mss_class()
        try:
            with self._mss() as sct:
                monitors = sct.monitors
        except ScreenShotError as exc:  # no display, or the X server does not answer
            raise VidganError(f"no screen to capture ({first_line(exc)}); --screen needs a "
                              "desktop session (on Linux an X display in $DISPLAY)") from None
        self.box = screen_box(monitors, 1 if monitor is None else monitor, region)
        self.width, self.height = self.box["width"], self.box["height"]
        self.rate = Fraction(fps).limit_denominator(1001)
        self.name = f"screen {1 if monitor is None else monitor}"
        self.lost, self.skipped, self.on_demand = False, 0, True
        self._sct = None
        self._next = None

    def read(self) -> np.ndarray | None:
        if self._sct is None:
            self._sct = self._mss()  # in the capture thread: mss handles are per thread
        now = time.monotonic()
        self._next = now if self._next is None else max(self._next + 1 / self.rate, now)
        time.sleep(max(0.0, self._next - now))
        shot = self._sct.grab(self.box)
        bgra = np.frombuffer(shot.bgra, np.uint8).reshape(shot.height, shot.width, 4)
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)

    def close(self) -> None:
        if self._sct is not None:
            self._sct.close()


def screen_box(monitors: list[dict], monitor: int,
               region: tuple[int, int, int, int] | None) -> dict:
    """The mss grab box for `monitor` (mss numbering: 0 = all, 1.. each) and a region on it."""
    if not 0 <= monitor < len(monitors):
        listing = ", ".join(f"{i} ({m['width']}x{m['height']})" for i, m in enumerate(monitors))
        raise VidganError(f"no monitor {monitor}; monitors: {listing} (0 = all of them)")
    m = monitors[monitor]
    if region is None:
        return {k: m[k] for k in ("left", "top", "width", "height")}
    x, y, w, h = region
    if x + w > m["width"] or y + h > m["height"]:
        raise VidganError(f"--region {x},{y},{w},{h} lies outside monitor {monitor} "
                          f"({m['width']}x{m['height']}); give X,Y,W,H inside it")
    return {"left": m["left"] + x, "top": m["top"] + y, "width": w, "height": h}


def mss_class():
    import mss

    return getattr(mss, "MSS", None) or mss.mss  # mss >= 10 names it MSS; mss.mss is deprecated


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- file as live -------------------------------------------------------------------------


@source("input", "--input FILE", lambda o: "input" in o)
def _open_file(input: str | Path, loop: bool = False, capture_size: str | None = None,
               fps: float | None = None) -> FileSource:
    if capture_size or fps:
        raise VidganError("--capture-size and --fps do not apply to --input: a file plays "
                          "at its own size and frame rate")
    return FileSource(input, loop)


class FileSource:
    """A video file played as if live: frames are released at their timestamps against the
    monotonic clock; a frame that is already a frame interval late is skipped, as a camera
    drops what nobody reads in time. With `loop`, the file starts again after its last frame,
    one frame later, and never ends. clock/sleep: time.monotonic and time.sleep, or stand-ins."""

    def __init__(self, path: str | Path, loop: bool = False, clock=time.monotonic,
                 sleep=time.sleep):

        self._info = info = probe(path)
        self.width, self.height, self.rate = info.width, info.height, info.rate
        self.name = info.path.name
        self.lost, self.skipped, self.on_demand = False, 0, False
        self.loop, self._clock, self._sleep = loop, clock, sleep
        self._time_base = float(info.time_base)
        self._interval = float(1 / info.rate)
        self._start_pass(None)

    def _start_pass(self, start: float | None) -> None:
        """Decode from the first frame, showing it at monotonic time `start` (None: when it is
        read, so the time spent warming up the model is not counted as lateness)."""

        self._reader = VideoReader(self._info)
        self._frames = iter(self._reader)
        self._index = 0
        self._start: float | None = start
        self._origin: float | None = None  # the first frame's time in the file, seconds
        self._end: float | None = None  # when the last frame released so far stops showing

    def read(self) -> np.ndarray | None:
        while True:
            for frame in self._frames:
                due = self._due(frame.pts, frame.duration)
                now = self._clock()
                if now > due + self._interval:
                    self.skipped += 1
                    continue
                if now < due:
                    self._sleep(due - now)
                return frame.image
            if not self.loop or self._end is None:  # (a pass without frames would spin)
                return None
            self._frames.close()
            self._start_pass(self._end)

    @property
    def undecodable(self) -> int:
        """Frames of the file that could not be decoded so far in this pass (VideoReader.lost):
        damaged packets as they come, and at the end the frames a file cut short never had."""
        return self._reader.lost

    def _due(self, pts: int | None, duration: int | None) -> float:
        """The monotonic time at which the frame with `pts` (lasting `duration`) is shown."""
        t = pts * self._time_base if pts is not None else self._index * self._interval
        self._index += 1
        if self._origin is None:
            self._origin = t
            if self._start is None:
                self._start = self._clock()
        due = self._start + (t - self._origin)
        self._end = due + (duration * self._time_base if duration else self._interval)
        return due

    def close(self) -> None:
        self._frames.close()  # a generator: closing it closes the container
