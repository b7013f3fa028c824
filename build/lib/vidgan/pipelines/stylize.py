"""Still images: one image or a folder of images in, the same out (names kept).

EXIF orientation is applied before stylizing, so the output is upright and carries no EXIF.
16-bit and float images are scaled to 8 bits by their depth or range; transparency is kept
where the output format has an alpha channel. Each output is encoded in memory, written under a
temporary name and renamed when complete (vidgan.core.files). An image that cannot be stylized (too
small, animated, unreadable, too big for memory) is an error, or in a folder skipped and counted.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import write_atomic
from vidgan.core.images import is_image_name, suffix_list
from vidgan.core.progress import Progress
from vidgan.runtime import frames
from vidgan.runtime.stylizer import Stylizer
from vidgan.runtime.video import warn

ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}  # output formats that keep an alpha channel
# Smaller images are refused: a 3x2 "photo" has nothing to paint (frames.MIN_SIDE pads what
# the model needs; this is about what is worth stylizing).
MIN_IMAGE_SIDE = 8


@dataclass
class StylizeResult:
    written: list[Path]
    skipped: list[Path]  # images of a folder that could not be stylized (see the warning)
    seconds: float
    backend: str
    model: str  # the model file's name


class ImageProblem(VidganError):
    """An input image that cannot be stylized; `reason` is the short form for a folder's summary."""

    def __init__(self, path: Path, reason: str, message: str | None = None):
        super().__init__(message or f"{path}: {reason}")
        self.reason = reason


@dataclass
class Picture:
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    alpha: np.ndarray | None  # (H, W) uint8 when the image has transparency


def stylize_images(input: str | Path, output: str | Path, stylizer: Stylizer, *,
                   side_by_side: bool = False, overwrite: bool = False,
                   progress: bool = True) -> StylizeResult:
    """Stylize an image file, or every image in a folder (not its subfolders), into `output`.

    input file -> output file (its extension picks the format) or into an existing folder;
    input folder -> output folder (created if missing), same file names. Outputs keep the
    input's size whatever the stylizer's processing height. side_by_side: before | after,
    twice as wide. Transparency is kept where the output format takes it (PNG, WebP, TIFF). In
    a folder, an image that cannot be stylized (unreadable, tiny, animated, too big for memory)
    is skipped and counted; a single such image is a VidganError.
    """
    jobs = plan(Path(input), Path(output), overwrite)
    single = Path(input).is_file()
    written, skipped, reasons, no_alpha = [], [], [], []
    began = time.perf_counter()
    try:
        with Progress("stylize", len(jobs), unit="images", enabled=progress) as bar:
            for src, dst in jobs:
                try:
                    picture = load_image(src)
                    _check_fits(stylizer, picture, src)
                except ImageProblem as exc:
                    if single:
                        raise
                    skipped.append(src)
                    reasons.append(f"{src.name} ({exc.reason})")
                else:
                    if not save_image(_stylized(stylizer, picture, side_by_side), dst):
                        no_alpha.append(dst)
                    written.append(dst)
                bar.advance()
    except KeyboardInterrupt:
        done = (f"{output} was not written" if single else
                f"{len(written)} of {len(jobs)} images written to {output}")
        raise Interrupted(f"interrupted: {done}") from None
    result = StylizeResult(written, skipped, time.perf_counter() - began, stylizer.name,
                           stylizer.model_name)
    _warn_about(reasons, no_alpha)
    if progress:
        print(f"stylized {len(written)} image(s) in {result.seconds:.1f} s ({result.backend}, "
              f"{result.model}) -> {output}")
    return result


def planned_shapes(input: str | Path, height: int | None) -> list[tuple]:
    """The (1, H, W) shapes stylizing `input` (a file or a folder) runs, for choosing a
    backend; [] where there is no input (stylize_images then says so)."""
    src = Path(input)
    if src.is_dir():
        paths = sorted(p for p in src.iterdir() if is_image_name(p))
    else:
        paths = [src] if src.is_file() else []
    sizes = filter(None, (upright_size(p) for p in paths))
    return sorted({(1, *frames.processing_size(h, w, height)) for h, w in sizes})


def _check_fits(stylizer: Stylizer, picture: Picture, src: Path) -> None:
    try:
        stylizer.check_memory(*picture.rgb.shape[:2], what="stylizing it")
    except VidganError as exc:
        raise ImageProblem(src, exc.message) from None


def _stylized(stylizer: Stylizer, picture: Picture, side_by_side: bool) -> Picture:
    styled = stylizer(picture.rgb)[0].cpu().numpy()
    if not side_by_side:
        return Picture(styled, picture.alpha)
    alpha = None if picture.alpha is None else np.concatenate([picture.alpha] * 2, axis=1)
    return Picture(frames.side_by_side(picture.rgb, styled), alpha)


def _warn_about(reasons: list[str], no_alpha: list[Path]) -> None:
    if reasons:
        more = f" and {len(reasons) - 5} more" if len(reasons) > 5 else ""
        warn(f"skipped {len(reasons)} image(s): {'; '.join(reasons[:5])}{more}")
    if no_alpha:
        warn(f"the transparency of {len(no_alpha)} image(s) was dropped ({no_alpha[0].name}...): "
             f"{_format(no_alpha[0])} has no alpha channel; write .png, .webp or .tif to keep it")


def plan(src: Path, dst: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs; every user error is raised here, before the model loads."""
    if not src.exists():
        raise VidganError(f"{src} does not exist")
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.is_file() and is_image_name(p))
        if not images:
            raise VidganError(f"{src} holds no images ({suffix_list()})")
        if dst.exists() and not dst.is_dir():
            raise VidganError(f"{dst} is a file; the output of a folder is a folder")
        if dst.resolve() == src.resolve():
            raise VidganError("the output folder is the input folder; choose another one")
        _check_folder(dst.parent)
        jobs = [(p, dst / p.name) for p in images]
    else:
        load_image(src, header_only=True)
        target = dst / src.name if dst.is_dir() else dst
        if target.resolve() == src.resolve():
            raise VidganError(f"the output {target} is the input; choose another output name")
        _format(target)
        _check_folder(target.parent)
        jobs = [(src, target)]
    existing = [d for _, d in jobs if d.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise VidganError(f"{existing[0]} already exists{more}; pass --overwrite to replace")
    if src.is_dir():
        dst.mkdir(exist_ok=True)
    return jobs


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise VidganError(f"the output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise VidganError(f"cannot write to {folder}")


def _format(path: Path) -> str:
    """The PIL format for an output name, from its extension."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or not is_image_name(path):
        raise VidganError(f"cannot tell the image format from {path.name!r}; use one of {suffix_list()}")
    return fmt


def load_image(path: Path, header_only: bool = False) -> Picture | None:
    """The image upright per its EXIF orientation, as 8-bit RGB (and its alpha channel, if it
    has transparency). ImageProblem when it cannot be stylized: unreadable, animated, or
    smaller than MIN_IMAGE_SIDE. header_only: only check that PIL recognizes a still image."""
    try:
        with Image.open(path) as im:
            count = getattr(im, "n_frames", 1)
            if count > 1:
                raise ImageProblem(path, f"an animation of {count} frames; stylize takes still "
                                         "images (`vidgan render` takes an animated GIF)")
            if header_only:
                return None
            picture = _to_8bit(ImageOps.exif_transpose(im))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(path, "unreadable", f"{path} is not an image PIL can read ({exc})") from None
    h, w = picture.rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageProblem(path, f"{w}x{h} px is too small to stylize (at least {MIN_IMAGE_SIDE} "
                                 "px a side)")
    return picture


def upright_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of an image as load_image returns it (EXIF rotation applied), from its header
    alone; None when PIL can't read it."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # Orientation: a quarter turn
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return (w, h) if turned else (h, w)


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _to_8bit(im) -> Picture:
    """8-bit RGB (+ alpha) of any PIL mode. 16-bit, 32-bit and float images are scaled by their
    bit depth or range: PIL's own convert("RGB") clips them to 255 (a white image)."""
    if im.mode in HIGH_DEPTH_MODES:
        gray = _scaled(np.asarray(im), im.mode)
        return Picture(np.repeat(gray[..., None], 3, axis=2), None)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        rgba = np.array(im.convert("RGBA"))
        alpha = rgba[..., 3]
        opaque = bool(alpha.min() == 255)
        return Picture(np.ascontiguousarray(rgba[..., :3]), None if opaque else np.ascontiguousarray(alpha))
    return Picture(np.array(im.convert("RGB")), None)


def _scaled(values: np.ndarray, mode: str) -> np.ndarray:
    """A one-channel 16-bit, 32-bit or float image as uint8: 16-bit by 65535; 32-bit integers
    by the depth their values fit (8 or 16 bits); floats in [0, 1] by 1. Anything else is
    stretched from its own minimum to its maximum."""
    a = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("I;16"):
        full = 65535.0
    elif mode == "I" and lo >= 0 and hi <= 65535:
        full = 255.0 if hi <= 255 else 65535.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        full = 1.0
    else:
        a, full = a - lo, (hi - lo) or 1.0
    return np.clip(np.round(a * (255 / full)), 0, 255).astype(np.uint8)


def save_image(picture: Picture | np.ndarray, path: Path) -> bool:
    """Write an image whole or not at all (vidgan.core.files.write_atomic): encoded in memory, then
    written, synced and renamed. A (H, W, 3) array is plain RGB. Returns False when the
    picture's alpha had to be dropped because the format has no alpha channel."""
    if isinstance(picture, np.ndarray):
        picture = Picture(picture, None)
    fmt = _format(path)
    image = picture.rgb
    kept = picture.alpha is None or fmt in ALPHA_FORMATS
    if picture.alpha is not None and kept:
        image = np.dstack([image, picture.alpha])
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    write_atomic(path, buffer.getvalue())
    return kept
