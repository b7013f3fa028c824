"""Still images: one image or a folder of images in, the same out (names kept).

EXIF orientation is applied before stylizing, so the output is upright and carries no EXIF.
Each output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidgan.errors import VidganError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class StylizeResult:
    written: list[Path]
    skipped: list[Path]  # unreadable images in a folder
    seconds: float
    backend: str
    model: str  # the model file's name


def stylize_images(input: str | Path, output: str | Path, *, model: str | Path | None = None,
                   backend="auto", device: str | None = None, precision: str = "auto",
                   height: int | None = None, side_by_side: bool = False, overwrite: bool = False,
                   progress: bool = True) -> StylizeResult:
    """Stylize an image file, or every image in a folder (not its subfolders), into `output`.

    backend: a name for vidgan.backends.load_backend or a Backend object.
    input file -> output file (its extension picks the format) or into an existing folder;
    input folder -> output folder (created if missing), same file names.
    height: processing height in pixels (None: each image's own); outputs keep the input's size.
    side_by_side: write before | after, twice as wide.
    """
    from vidgan import frames
    from vidgan.backends import load_backend
    from vidgan.render import FrameProgress

    jobs = plan(Path(input), Path(output), overwrite)
    single = Path(input).is_file()
    if isinstance(backend, str):
        sizes = filter(None, (upright_size(src) for src, _ in jobs))
        shapes = {(1, *frames.processing_size(h, w, height)) for h, w in sizes}
        be = load_backend(model, backend, device, precision, shapes=sorted(shapes))
    else:
        be = backend
    stylizer = frames.Stylizer(be, height)
    written, skipped = [], []
    began = time.perf_counter()
    with FrameProgress("stylize", len(jobs), unit="images", enabled=progress) as bar:
        for src, dst in jobs:
            image = load_image(src, strict=single)
            if image is None:
                skipped.append(src)
            else:
                styled = stylizer(image)[0].cpu().numpy()
                save_image(np.concatenate([image, styled], axis=1) if side_by_side else styled, dst)
                written.append(dst)
            bar.advance()
    result = StylizeResult(written, skipped, time.perf_counter() - began, be.name, be.model_name)
    if skipped:
        from vidgan.video import warn

        warn(f"skipped {len(skipped)} unreadable image(s): {', '.join(p.name for p in skipped[:5])}")
    if progress:
        print(f"stylized {len(written)} image(s) in {result.seconds:.1f} s ({be.name}, {be.model_name}) -> {output}")
    return result


def plan(src: Path, dst: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs; every user error is raised here, before the model loads."""
    if not src.exists():
        raise VidganError(f"{src} does not exist")
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not images:
            raise VidganError(f"{src} holds no images ({', '.join(sorted(EXTENSIONS))})")
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
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or path.suffix.lower() not in EXTENSIONS:
        raise VidganError(f"cannot tell the image format from {path.name!r}; "
                          f"use one of {', '.join(sorted(EXTENSIONS))}")
    return fmt


def load_image(path: Path, strict: bool = True, header_only: bool = False) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB, upright per its EXIF orientation. Unreadable: VidganError when
    `strict`, else None. header_only: only check that PIL recognizes the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if header_only:
                return None
            return np.array(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if strict:
            raise VidganError(f"{path} is not an image PIL can read ({exc})") from None
        return None


def upright_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of an image as load_image returns it (EXIF rotation applied), from its header
    alone; None when PIL can't read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # Orientation: a quarter turn
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return (w, h) if turned else (h, w)


def save_image(image: np.ndarray, path: Path) -> None:
    """Write (H, W, 3) uint8 RGB atomically: a temporary name, then a rename."""
    from PIL import Image

    fmt = _format(path)
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        Image.fromarray(image).save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
