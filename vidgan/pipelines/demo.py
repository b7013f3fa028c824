"""`vidgan demo`: the first command to run. A short clip stylized by the bundled model.

With no input from the user the clip is built from sample photographs that ship inside
scikit-image (skimage.data: rocket, public domain, SpaceX; coffee and chelsea, CC0) as a slow
pan and zoom over each (Ken Burns), then rendered by vidgan.pipelines.render.render_video. With a camera,
a few seconds of it go through the live pipeline instead. Either way the outputs are demo.mp4
and demo.png: a few frames before (top row) and after (bottom row).
"""

from __future__ import annotations

import io
import math
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import commit, write_atomic
from vidgan.core.images import sample_photos
from vidgan.pipelines.live import open_source, run_live
from vidgan.pipelines.render import render_video
from vidgan.runtime.frames import processing_size
from vidgan.runtime.stylizer import Stylizer
from vidgan.runtime.video import VideoReader, VideoWriter, probe

CLIP_SIZE = (640, 360)  # (W, H)
CLIP_FPS = 24
HEIGHT = 256  # processing height: a few seconds of clip stay quick on a 2-core CPU
ZOOM = 0.8  # the window shrinks (or grows) to this fraction of the photo over its shot
STILLS = 3  # frames shown in demo.png
MAX_SECONDS = 600.0  # --seconds: the built-in clip is made in memory-light steps, but not forever


@dataclass
class DemoResult:
    video: Path
    image: Path
    frames: int
    seconds: float
    model: str  # the model file's name


def run_demo(out: str | Path, stylizer: Stylizer, *, camera: str | None = None,
             seconds: float = 4.0, size: tuple[int, int] = CLIP_SIZE, fps: int = CLIP_FPS,
             source=None, overwrite: bool = False) -> DemoResult:
    """Write `out` (the stylized clip) and `out` with .png (before above after); an existing
    one of them is a VidganError unless `overwrite`.

    camera: record `seconds` of this camera (index, device path or URL) through the live
    pipeline; `source` (a vidgan.pipelines.live Source) does the same for any source. Otherwise
    the clip is `seconds` long, `size` (W, H) at `fps`, built from scikit-image's sample
    photographs. The stylizer's processing height applies (the CLI's: HEIGHT).
    """
    out = Path(out)
    check_options(out, seconds, overwrite)
    existing = [p for p in (out, out.with_suffix(".png")) if p.exists()]
    began = time.perf_counter()
    try:
        if camera is not None or source is not None:
            count, image = _live_demo(out, stylizer, source or open_source(camera=str(camera)),
                                      seconds)
        else:
            count, image = _clip_demo(out, stylizer, seconds, size, fps)
    except KeyboardInterrupt:
        kept = [p.name for p in (out, out.with_suffix(".png")) if p.exists() and p not in existing]
        raise Interrupted(f"interrupted: {' and '.join(kept) if kept else 'nothing'} written"
                          ) from None
    return DemoResult(out, image, count, time.perf_counter() - began, stylizer.model_name)


def check_options(out: Path, seconds: float, overwrite: bool) -> None:
    """User errors in the demo's options, before any work."""
    if not 0 < seconds <= MAX_SECONDS:  # NaN too
        raise VidganError(f"--seconds must be more than 0 and at most {MAX_SECONDS}, not {seconds}")
    if out.suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise VidganError(f"{out} should end in .mp4, .mkv or .mov")
    if not out.parent.is_dir():
        raise VidganError(f"the output folder {out.parent} does not exist")
    existing = [p for p in (out, out.with_suffix(".png")) if p.exists()]
    if existing and not overwrite:
        raise VidganError(f"{existing[0]} already exists; pass --overwrite to replace "
                          f"{' and '.join(str(p) for p in existing)}")


def clip_shapes(size: tuple[int, int] = CLIP_SIZE, height: int | None = HEIGHT) -> list[tuple]:
    """The (1, H, W) frames the built-in clip runs at, for choosing a backend."""
    return [(1, *processing_size(size[1], size[0], height))]


def format_result(result: DemoResult) -> str:
    return (f"demo: {result.frames} frames in {result.seconds:.1f} s ({result.model}) -> "
            f"{result.video} (the stylized clip) and {result.image} (before above, after below)")


# --- the built-in clip ----------------------------------------------------------------------


def clip_frame(photos: list[np.ndarray], index: int, total: int,
               size: tuple[int, int] = CLIP_SIZE) -> np.ndarray:
    """Frame `index` of `total`: (H, W, 3) uint8 at `size` (W, H).

    The photos share the clip equally; over its shot each is seen through a window of the
    clip's aspect that zooms in (even shots) or out (odd ones) while it pans sideways, eased
    at both ends. Sub-pixel placement keeps the motion smooth.
    """
    share = total / len(photos)
    shot = min(int(index / share), len(photos) - 1)
    t = (index - shot * share) / max(share - 1, 1)
    t = 0.5 - 0.5 * math.cos(math.pi * min(t, 1.0))
    photo = photos[shot]
    h, w = photo.shape[:2]
    width, height = size
    full_w = min(w, h * width / height)  # the largest window of the clip's aspect
    zoom = 1 + (ZOOM - 1) * (t if shot % 2 == 0 else 1 - t)
    win_w, win_h = full_w * zoom, full_w * zoom * height / width
    pan = t if shot % 2 == 0 else 1 - t
    x0 = (w - win_w) * pan
    y0 = (h - win_h) / 2
    scale = width / win_w
    matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    return cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def write_clip(path: Path, seconds: float, size: tuple[int, int] = CLIP_SIZE,
               fps: int = CLIP_FPS) -> int:
    """The sample-photo clip as a video file (near-lossless H.264); returns its frame count."""
    photos = sample_photos()
    total = max(1, round(seconds * fps))
    with VideoWriter(path, *size, rate=Fraction(fps), crf=10) as writer:
        for i in range(total):
            writer.write(clip_frame(photos, i, total, size))
    return total


def _clip_demo(out: Path, stylizer: Stylizer, seconds: float, size: tuple[int, int],
               fps: int) -> tuple[int, Path]:
    with tempfile.TemporaryDirectory(prefix="vidgan-demo-") as tmp:
        source = Path(tmp) / "photos.mp4"
        total = write_clip(source, seconds, size, fps)
        result = render_video(source, out, stylizer, overwrite=True)
        picks = _still_indices(total)
        before = _frames_at(VideoReader(probe(source)), picks)
    after = _frames_at(VideoReader(probe(out)), picks)
    return result.frames, _write_stills(before, after, out.with_suffix(".png"))


def _still_indices(total: int, count: int = STILLS) -> list[int]:
    """The middle frame of each of `count` equal parts of the clip (one per photo)."""
    return sorted({min(total - 1, int((k + 0.5) * total / count)) for k in range(count)})


def _frames_at(reader, indices: list[int]) -> list[np.ndarray]:
    wanted, found = set(indices), []
    for i, frame in enumerate(reader):
        if i in wanted:
            found.append(frame.image)
        if len(found) == len(wanted):
            break
    return found


def _write_stills(before: list[np.ndarray], after: list[np.ndarray], path: Path,
                  height: int = 240) -> Path:
    """One PNG: `before` frames in the top row, `after` below, each `height` px tall."""
    def row(images):
        return np.hstack([cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height),
                                     interpolation=cv2.INTER_AREA) for im in images])

    grid = np.vstack([row(before), row(after)])
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())


# --- a camera through the live pipeline -----------------------------------------------------


class _KeepStills:
    """A live Source that passes frames on and keeps a copy of one frame every `every` seconds
    (and the last frame read, for a source that ends before the first of them)."""

    def __init__(self, source, every: float, count: int = STILLS):
        self.source, self.every, self.count = source, every, count
        self.name, self.width, self.height, self.rate = source.name, source.width, source.height, source.rate
        self.on_demand = source.on_demand
        self.kept: list[np.ndarray] = []
        self.last: np.ndarray | None = None
        self._next = None

    @property
    def lost(self) -> bool:
        return self.source.lost

    @property
    def skipped(self) -> int:
        return self.source.skipped

    def read(self):
        image = self.source.read()
        now = time.monotonic()
        if self._next is None:
            self._next = now + self.every / 2
        if image is not None:
            self.last = image
            if now >= self._next and len(self.kept) < self.count:
                self.kept.append(image.copy())
                self._next += self.every
        return image

    def close(self) -> None:
        self.source.close()


def _live_demo(out: Path, stylizer: Stylizer, source, seconds: float) -> tuple[int, Path]:
    keeper = _KeepStills(source, every=seconds / STILLS)
    recording = out.with_name(f"{out.stem}.recording{out.suffix}")
    stats = run_live(keeper, stylizer, window=False, record=recording, overwrite=True,
                     duration=seconds, stats_every=None)
    if not recording.exists():
        raise VidganError(f"{keeper.name} gave no frames: nothing recorded")
    commit(recording, out)  # complete already: the recorder wrote it under a temporary name
    stills = keeper.kept or [keeper.last]
    after = [stylizer(image)[0].cpu().numpy() for image in stills]
    return stats.shown, _write_stills(stills, after, out.with_suffix(".png"))
