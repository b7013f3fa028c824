"""Still images in: the one image loader, the one set of image suffixes, the sample photos.

Images are read with PIL and turned upright by their EXIF orientation; as arrays they are RGB
uint8 (H, W, 3).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vidgan.core.errors import VidganError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SAMPLES = ("rocket", "coffee", "chelsea")  # outdoor scene first: the model's home ground


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def suffix_list() -> str:
    """The suffixes for a message: ".bmp, .gif, .jpeg, ..."."""
    return ", ".join(sorted(IMAGE_SUFFIXES))


def load_rgb(path: str | Path) -> Image.Image:
    """An image as RGB, turned upright according to its EXIF orientation."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def load_rgb_array(path: str | Path) -> np.ndarray:
    """load_rgb as an RGB uint8 (H, W, 3) array."""
    return np.asarray(load_rgb(path))


def list_images(folder: str | Path) -> list[Path]:
    """Readable images in `folder`, sorted; unreadable ones are skipped with one counted warning."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VidganError(f"image folder {folder} does not exist")
    candidates = sorted(p for p in folder.iterdir() if is_image_name(p))
    good = [p for p in candidates if _readable(p)]
    if len(good) < len(candidates):
        warnings.warn(
            f"skipped {len(candidates) - len(good)} unreadable image(s) in {folder}", stacklevel=2
        )
    if not good:
        raise VidganError(f"no readable images in {folder} (looked for {suffix_list()})")
    return good


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))  # JPEG decodes at 1/8 scale: a fast full check
            im.load()
        return True
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def sample_photos() -> list[np.ndarray]:
    """Sample photographs that ship inside scikit-image (skimage.data: rocket, public domain,
    SpaceX; coffee and chelsea, CC0), as (H, W, 3) uint8 RGB."""
    import skimage.data  # a second's import, for the demo and export's checks only

    return [getattr(skimage.data, name)() for name in SAMPLES]
