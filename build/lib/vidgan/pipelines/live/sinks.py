"""Where live frames go: an OpenCV window with an overlay, a recording, a virtual camera.

Keys reach the window's state through `handle_key(key, state)`, a plain function, so the
controls can be driven without a display.
"""

from __future__ import annotations

import sys

# An OpenCV (Qt) window opened in a process that loaded PyAV first hangs (PyAV-Org/PyAV#978,
# #1050): PyAV's wheels bundle their own libxcb. Noted before this module loads either.
AV_BEFORE_CV2 = "av" in sys.modules and "cv2" not in sys.modules

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vidgan.core.errors import VidganError
from vidgan.pipelines.live.sources import first_line, mss_class
from vidgan.runtime.frames import side_by_side
from vidgan.runtime.video import VideoWriter

WINDOW_TITLE = "vidgan live"


@dataclass
class ViewState:
    """What the user asked for, shared by the window, the pipeline and the recorder."""

    mode: str = "stylized"  # "stylized", "original" or "side" (side by side)
    fullscreen: bool = False
    paused: bool = False
    recording: bool = False
    overlay: bool = True  # the stats overlay; off gives window capture (OBS) a clean picture
    help: bool = False  # the key list
    quit: bool = False


KEYS = {ord("q"): "quit", 27: "quit", ord("s"): "side", ord("o"): "original",
        ord("f"): "fullscreen", ord(" "): "pause", ord("r"): "record", ord("i"): "overlay",
        ord("h"): "help"}
HELP = ("q, Esc  quit (keeps the recording)", "s  side by side", "o  original",
        "f  fullscreen", "space  pause", "r  record on/off", "i  overlay on/off", "h  this list")
TOGGLES = {"fullscreen": "fullscreen", "pause": "paused", "record": "recording",
           "overlay": "overlay", "help": "help"}  # action -> the ViewState flag it flips


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
    elif action in TOGGLES:
        flag = TOGGLES[action]
        setattr(state, flag, not getattr(state, flag))
    return action


def compose(original: np.ndarray, stylized: np.ndarray, mode: str) -> np.ndarray:
    """The RGB image the window shows in `mode`: (H, W, 3), or (H, 2W, 3) side by side."""
    if mode == "original":
        return original
    if mode == "side":
        return side_by_side(original, stylized)
    return stylized


class Window:
    """An OpenCV window showing the stylized frames with a stats overlay.

    It opens at `size` (w, h), the output's size or the one asked, for one picture (side by
    side is two pictures wide), shrunk to fit the screen, without Qt's toolbar and status bar.
    Every frame is scaled to the window's current size with its aspect kept (black bars fill
    the rest), so fullscreen and resizing never stretch it, and the overlay is drawn after
    scaling, in window pixels, so it reads the same at 240p and 1080p. Closing the window
    (its close button, Alt+F4) quits as q does.
    """

    def __init__(self, size: tuple[int, int], title: str = WINDOW_TITLE):
        check_display()
        self._cv2 = cv2
        self.title, self.size = title, size
        self.closed = False
        self._screen = screen_size()
        self._fullscreen = False
        self._sized_for = "one"  # what the window's size was last set for: "one" or "side"
        self._view: tuple[int, int] | None = None  # the picture's (w, h) at the last show
        self._last: tuple | None = None  # (original, stylized, overlay) shown last: redraws
        try:
            # GUI_NORMAL: no toolbar or status bar (so Qt loads no fonts, and prints no font
            # warnings on every start); FREERATIO: `fit` keeps the aspect, since Qt's own
            # keep-ratio resizes the window, which fullscreen cannot, and so stretched it
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_FREERATIO
                            | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:  # e.g. opencv-python-headless: no GUI compiled in
            raise VidganError(f"cannot open a window ({first_line(exc)}); use --no-window "
                              "(with --record, --serve or --virtual-cam)") from None
        cv2.resizeWindow(title, *window_size(size, False, None, self._screen))

    def show(self, original: np.ndarray, stylized: np.ndarray, state: ViewState,
             overlay: str) -> None:
        """Show the frame in `state.mode`; overlay: lines of text for the top left corner."""
        if self.closed:
            return
        view = self._follow(state)
        if view is None:
            state.quit = True
            return
        canvas = fit(compose(original, stylized, state.mode), view)
        lines = (overlay.splitlines() if state.overlay else []) + (list(HELP) if state.help else [])
        if lines:
            draw_panel(canvas, lines)
        self._cv2.imshow(self.title, canvas)
        self._view, self._last = view, (original, stylized, overlay)

    def poll(self, state: ViewState) -> None:
        """Pump the window's events and apply a pressed key; closing the window quits; a
        resized window gets the last frame again, fitted to its new size."""
        if self.closed:
            return
        handle_key(self._cv2.waitKey(1), state)
        view = self._picture_size()
        if view is None:
            state.quit = True
        elif self._last is not None and view != self._view:
            self.show(*self._last[:2], state, self._last[2])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cv2.destroyWindow(self.title)
            self._cv2.waitKey(1)

    def _follow(self, state: ViewState) -> tuple[int, int] | None:
        """Apply fullscreen and size the window for side by side or one picture; the
        picture's (w, h) to draw, or None once the window is gone."""
        cv2 = self._cv2
        if state.fullscreen != self._fullscreen:
            flag = cv2.WINDOW_FULLSCREEN if state.fullscreen else cv2.WINDOW_NORMAL
            cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, flag)
            self._fullscreen = state.fullscreen
        kind = "side" if state.mode == "side" else "one"
        current = self._picture_size()
        if self._fullscreen or kind == self._sized_for or current is None:
            return current
        # into or out of side by side: as wide as that needs, at the height the window has now
        size = window_size(self.size, kind == "side", current[1], self._screen)
        cv2.resizeWindow(self.title, *size)
        self._sized_for = kind
        return size

    def _picture_size(self) -> tuple[int, int] | None:
        """The (w, h) of the window's picture area; None once the window was closed (Qt
        destroys it, and OpenCV then raises for its name)."""
        cv2 = self._cv2
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
            _, _, w, h = cv2.getWindowImageRect(self.title)
        except cv2.error:
            visible = 0
        if visible < 1:
            self.closed = True
            return None
        return w, h


def window_size(one: tuple[int, int], side: bool, height: int | None,
                screen: tuple[int, int] | None) -> tuple[int, int]:
    """The window's (w, h): `one` (w, h) is one picture's size; side by side is two pictures
    wide; `height` keeps the height the window has now (the user may have resized it).
    Shrunk, aspect kept, to fit 90% of `screen` (w, h) when given."""
    w, h = one
    if height:
        w, h = w * height / h, height
    if side:
        w *= 2
    if screen:
        shrink = min(1.0, 0.9 * screen[0] / w, 0.9 * screen[1] / h)
        w, h = w * shrink, h * shrink
    return max(1, round(w)), max(1, round(h))


def fit(image: np.ndarray, view: tuple[int, int]) -> np.ndarray:
    """`image` (RGB uint8, (H, W, 3)) scaled into a new BGR canvas of `view` (w, h) with its
    aspect kept and centred; black bars fill the rest."""
    vw, vh = view
    h, w = image.shape[:2]
    scale = min(vw / w, vh / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if (sw, sh) != (w, h):
        image = cv2.resize(image, (sw, sh),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # a copy: the overlay never marks the frame
    if (sw, sh) == (vw, vh):
        return bgr
    canvas = np.zeros((vh, vw, 3), np.uint8)
    x, y = (vw - sw) // 2, (vh - sh) // 2
    canvas[y:y + sh, x:x + sw] = bgr
    return canvas


def text_style(height: int) -> tuple[float, int, int]:
    """(font scale, stroke thickness, text height in pixels) for overlay text in a picture
    `height` pixels high: 3.5% of it, never under 13 px (readable at 240p) nor over 32."""
    px = min(32, max(13, round(height * 0.035)))
    return px / 27, 1 if px < 22 else 2, px  # FONT_HERSHEY_SIMPLEX is 27 px high at scale 1


def draw_panel(canvas: np.ndarray, lines: list[str]) -> None:
    """White text lines on a darkened box in the top left corner of `canvas` (BGR), drawn in
    place. The box, not an outline, keeps it readable on any picture."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale, thickness, px = text_style(canvas.shape[0])
    step, pad = round(px * 1.5), max(4, px // 2)
    width = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
    box = canvas[:2 * pad + step * (len(lines) - 1) + px, :2 * pad + width]
    box //= 3
    for i, line in enumerate(lines):
        cv2.putText(canvas, line, (pad, pad + px + i * step), font, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)


def screen_size() -> tuple[int, int] | None:
    """The primary monitor's (w, h), or None where mss cannot tell."""
    from mss.exception import ScreenShotError

    try:
        with mss_class()() as sct:
            m = sct.monitors[1 if len(sct.monitors) > 1 else 0]
    except ScreenShotError:
        return None
    return m["width"], m["height"]


def check_display() -> None:
    """Raise a one-line error where no window can open (OpenCV's Qt would abort or hang)."""
    if not sys.platform.startswith("linux"):
        return
    hint = "use --no-window (headless, with --record, --serve or --virtual-cam)"
    if not os.environ.get("DISPLAY"):
        raise VidganError(f"no display for the window ($DISPLAY is not set); {hint}")
    if AV_BEFORE_CV2:
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
    at the speed things happened even when frames were dropped. The first take goes to `path`
    (which must not exist unless `overwrite`); every later take, and every take without a
    path, is named by the time it started: <stem>-YYYYmmdd-HHMMSS.mp4 (vidgan-live-... without
    a path), never replacing a file. clock: wall-clock seconds (time.time) for those names.
    """

    def __init__(self, path: str | Path | None, width: int, height: int, rate: Fraction,
                 overwrite: bool = False, clock=time.time):
        self.base = Path(path) if path else None
        if self.base is not None:
            _check_record_path(self.base, overwrite)
        self.size, self.rate, self.clock = (width, height), rate, clock
        self.saved: list[Path] = []
        self.frames = 0  # written to the current take
        self._writer = None
        self._origin = 0.0
        self._last_pts = -1

    @property
    def active(self) -> bool:
        return self._writer is not None

    def start(self) -> Path:
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
        if self.base is not None and not self.saved:  # (an empty first take saved nothing)
            return self.base
        base = self.base or Path("vidgan-live.mp4")
        started = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        path, n = base.with_name(f"{base.stem}-{started}{base.suffix}"), 1
        while path.exists() or path in self.saved:  # two takes within one second
            n += 1
            path = base.with_name(f"{base.stem}-{started}-{n}{base.suffix}")
        return path


def _check_record_path(path: Path, overwrite: bool) -> None:
    """User errors about --record's name, before anything starts."""
    if not path.parent.is_dir():
        raise VidganError(f"cannot record to {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise VidganError(f"cannot record to {path}: it is a folder; give a file name such as "
                          f"{path / 'take.mp4'}")
    if path.exists() and not overwrite:
        raise VidganError(f"{path} already exists; pass --overwrite to replace it, or choose "
                          "another --record name")


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
