"""Where live frames go: an OpenCV window with an overlay, a recording, a virtual camera.

Keys reach the window's state through `handle_key(key, state)`, a plain function, so the
controls can be driven without a display.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidgan.errors import VidganError
from vidgan.live.sources import first_line, mss_class

WINDOW_TITLE = "vidgan live"


@dataclass
class ViewState:
    """What the user asked for, shared by the window, the pipeline and the recorder."""

    mode: str = "stylized"  # "stylized", "original" or "side" (side by side)
    fullscreen: bool = False
    paused: bool = False
    recording: bool = False
    quit: bool = False


KEYS = {ord("q"): "quit", 27: "quit", ord("s"): "side", ord("o"): "original",
        ord("f"): "fullscreen", ord(" "): "pause", ord("r"): "record"}


def handle_key(key: int, state: ViewState) -> str | None:
    """Apply the action bound to `key` (a cv2.waitKey code, -1 = no key) to `state`.

    Returns the action's name, or None for an unbound key.
    """
    if key < 0:
        return None
    key &= 0xFF  # waitKey may carry modifier bits above the low byte
    action = KEYS.get(ord(chr(key).lower()))
    if action == "quit":
        state.quit = True
    elif action in ("side", "original"):
        state.mode = "stylized" if state.mode == action else action
    elif action == "fullscreen":
        state.fullscreen = not state.fullscreen
    elif action == "pause":
        state.paused = not state.paused
    elif action == "record":
        state.recording = not state.recording
    return action


def compose(original: np.ndarray, stylized: np.ndarray, mode: str) -> np.ndarray:
    """The RGB image the window shows in `mode`: (H, W, 3), or (H, 2W, 3) side by side."""
    if mode == "original":
        return original
    if mode == "side":
        return np.hstack((original, stylized))
    return stylized


class Window:
    """An OpenCV window showing the stylized frames with a one-line overlay."""

    def __init__(self, title: str = WINDOW_TITLE):
        check_display()
        import cv2

        self._cv2 = cv2
        self.title = title
        self._fullscreen = False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:  # e.g. opencv-python-headless: no GUI compiled in
            raise VidganError(f"cannot open a window ({first_line(exc)}); use --no-window "
                              "(with --record or --virtual-cam)") from None

    def show(self, original: np.ndarray, stylized: np.ndarray, state: ViewState,
             overlay: str) -> None:
        cv2 = self._cv2
        bgr = cv2.cvtColor(compose(original, stylized, state.mode), cv2.COLOR_RGB2BGR)
        scale = max(0.4, bgr.shape[0] / 900)
        for color, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined: readable anywhere
            cv2.putText(bgr, overlay, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                        color, max(1, int(width * scale)), cv2.LINE_AA)
        if state.fullscreen != self._fullscreen:
            flag = cv2.WINDOW_FULLSCREEN if state.fullscreen else cv2.WINDOW_NORMAL
            cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, flag)
            self._fullscreen = state.fullscreen
        cv2.imshow(self.title, bgr)

    def poll(self, state: ViewState) -> None:
        """Pump the window's events and apply a pressed key; closing the window quits."""
        handle_key(self._cv2.waitKey(1), state)
        if self._cv2.getWindowProperty(self.title, self._cv2.WND_PROP_VISIBLE) < 1:
            state.quit = True

    def close(self) -> None:
        self._cv2.destroyWindow(self.title)
        self._cv2.waitKey(1)


def check_display() -> None:
    """Raise a one-line error where no window can open (OpenCV's Qt would abort or hang)."""
    if not sys.platform.startswith("linux"):
        return
    hint = "use --no-window (headless, with --record or --virtual-cam)"
    if not os.environ.get("DISPLAY"):
        raise VidganError(f"no display for the window ($DISPLAY is not set); {hint}")
    from vidgan import live

    if live.AV_BEFORE_CV2:
        raise VidganError("cannot open a window: PyAV was imported before OpenCV in this process "
                          f"and OpenCV windows then hang (PyAV#978); import cv2 first, or {hint}")
    from mss.exception import ScreenShotError

    try:
        with mss_class()():
            pass
    except ScreenShotError as exc:  # the X server named in $DISPLAY does not answer
        raise VidganError(f"cannot reach the display {os.environ['DISPLAY']} "
                          f"({first_line(exc)}); {hint}") from None


class Recorder:
    """A recording of the shown frames, timed by the capture clock.

    Timestamps are milliseconds since the first recorded frame was captured, so the file plays
    at the speed things happened even when frames were dropped. Each start writes a new file:
    `path`, then path-2, path-3, ... (never overwriting an earlier take of this run).
    """

    def __init__(self, path: str | Path | None, width: int, height: int, rate: Fraction):
        self.base = Path(path) if path else Path(time.strftime("vidgan-live-%Y%m%d-%H%M%S.mp4"))
        if not self.base.parent.is_dir():
            raise VidganError(f"cannot record to {self.base}: folder {self.base.parent} does "
                              "not exist")
        self.size, self.rate = (width, height), rate
        self.saved: list[Path] = []
        self.frames = 0  # written to the current take
        self._writer = None
        self._origin = 0.0
        self._last_pts = -1
        self._take = 0

    @property
    def active(self) -> bool:
        return self._writer is not None

    def start(self) -> Path:
        from vidgan.video import VideoWriter

        self._take += 1
        self.path = self._take_path()
        self._writer = VideoWriter(self.path, *self.size, rate=self.rate,
                                   time_base=Fraction(1, 1000))
        self._origin, self._last_pts, self.frames = 0.0, -1, 0
        return self.path

    def write(self, image: np.ndarray, captured: float) -> None:
        """image: RGB uint8 (H, W, 3); captured: its time.monotonic() capture time."""
        if self.frames == 0:
            self._origin = captured
        # strictly increasing even if two frames were captured within the same millisecond
        pts = max(self._last_pts + 1, round((captured - self._origin) * 1000))
        self._writer.write(image, pts)
        self._last_pts = pts
        self.frames += 1

    def stop(self) -> Path | None:
        """Finalize the current take (it appears under its name only now); None if it is empty."""
        writer, self._writer = self._writer, None
        if self.frames == 0:
            writer.abort()
            return None
        writer.close()
        self.saved.append(self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _take_path(self) -> Path:
        path, n = self.base, 1
        while path.exists() or path in self.saved:
            n += 1
            path = self.base.with_name(f"{self.base.stem}-{n}{self.base.suffix}")
        return path


class VirtualCamera:
    """The stylized stream as a system camera (pyvirtualcam) for OBS, Zoom, Discord, ..."""

    def __init__(self, width: int, height: int, fps: float):
        try:
            import pyvirtualcam
        except ImportError:
            raise VidganError("--virtual-cam needs pyvirtualcam: pip install "
                              "'vidgan[virtualcam]'") from None
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as exc:
            raise VidganError(f"no virtual camera driver: {driver_hint()} "
                              f"(pyvirtualcam: {first_line(exc)})") from None
        self.device = self._cam.device

    def send(self, image: np.ndarray) -> None:
        """image: RGB uint8 (H, W, 3) of the size given at construction."""
        self._cam.send(image)

    def close(self) -> None:
        self._cam.close()


def driver_hint(platform: str = sys.platform) -> str:
    if platform.startswith("linux"):
        return ("install and load v4l2loopback (sudo modprobe v4l2loopback devices=1 "
                "exclusive_caps=1)")
    return "install OBS Studio (28 or newer) and start its virtual camera once"
