"""Unpaired image data for CycleGAN: two folders, fresh random crops and flips on every draw.

Randomness is a pure function of (seed, epoch, draw index), so an interrupted run that resumes
mid-epoch sees exactly the images and crops it would have seen, whatever the worker count.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidgan.core.errors import VidganError
from vidgan.core.images import load_rgb
from vidgan.core.normalization import TRAINING


def find_domains(data: str | Path, split: str = "train") -> tuple[Path, Path]:
    """(paintings, photos) folders of a CycleGAN layout: DIR/{split}A and DIR/{split}B."""
    data = Path(data)
    if not data.is_dir():
        raise VidganError(f"data folder {data} does not exist")
    a, b = data / f"{split}A", data / f"{split}B"
    if not (a.is_dir() and b.is_dir()):
        raise VidganError(
            f"{data} has no {split}A/{split}B folders; give a CycleGAN layout "
            "(trainA = paintings, trainB = photos) or --data-a and --data-b"
        )
    return a, b


def find_val_domains(data: str | Path) -> tuple[Path | None, Path | None]:
    """Held-out (paintings, photos) folders: valA/valB, else testA/testB, else None."""
    data = Path(data)
    for split in ("val", "test"):
        a, b = data / f"{split}A", data / f"{split}B"
        if a.is_dir() or b.is_dir():
            return (a if a.is_dir() else None), (b if b.is_dir() else None)
    return None, None


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> CHW float in the training range ([-1, 1], written into every model file)."""
    return TRAINING.to_model(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def augment(im: Image.Image, load_size: int, crop: int, rng: random.Random) -> Image.Image:
    """Shorter side to `load_size`, a random `crop` x `crop` window, a coin-flip mirror."""
    w, h = im.size
    scale = load_size / min(w, h)
    im = im.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.BICUBIC)
    left = rng.randint(0, im.width - crop)
    top = rng.randint(0, im.height - crop)
    im = im.crop((left, top, left + crop, top + crop))
    return im.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else im


class UnpairedDataset(torch.utils.data.Dataset):
    """Draw i of an epoch: a photo (x) and a painting (y), each freshly cropped and flipped.

    An epoch has max(len(photos), len(paintings)) draws; each domain is reshuffled per epoch and
    its permutation repeated to fill the epoch. Call `set_epoch` before each epoch.
    """

    def __init__(
        self, photos: list[Path], paintings: list[Path], crop: int, load_size: int, seed: int = 0
    ):
        self.photos, self.paintings = photos, paintings
        self.crop, self.load_size, self.seed = crop, load_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self)
        self.order_x = _fill(rng.permutation(len(self.photos)), n)
        self.order_y = _fill(rng.permutation(len(self.paintings)), n)

    def __len__(self) -> int:
        return max(len(self.photos), len(self.paintings))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        x = augment(load_rgb(self.photos[self.order_x[i]]), self.load_size, self.crop, rng)
        y = augment(load_rgb(self.paintings[self.order_y[i]]), self.load_size, self.crop, rng)
        return to_tensor(x), to_tensor(y)


def _fill(perm: np.ndarray, n: int) -> np.ndarray:
    return np.resize(perm, n)


class ImagePool:
    """History of generated images (Shrivastava et al.): the discriminator sees old fakes too.

    With probability 0.5 a new fake replaces a random stored one and the stored one is returned.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [im.to(device) for im in state["images"]]
        self.rng.setstate(state["rng"])
