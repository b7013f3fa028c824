"""Unpaired image data: folders, unreadable files, augmentation, the image pool."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.core import images
from vidgan.core.errors import VidganError
from vidgan.train import data


def write_images(folder: Path, n: int, size=(48, 40), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    good = write_images(tmp_path, 3)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    (tmp_path / "notes.txt").write_text("not an image, not counted")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        found = images.list_images(tmp_path)
    assert found == good


def test_all_readable_gives_no_warning(tmp_path):
    write_images(tmp_path, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(images.list_images(tmp_path)) == 2


def test_empty_or_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(VidganError, match="no readable images in") as e:
        images.list_images(tmp_path)
    assert "\n" not in e.value.message
    with pytest.raises(VidganError, match="does not exist"):
        images.list_images(tmp_path / "missing")


def test_find_domains(tmp_path):
    with pytest.raises(VidganError, match="does not exist"):
        data.find_domains(tmp_path / "missing")
    with pytest.raises(VidganError, match="no trainA/trainB"):
        data.find_domains(tmp_path)
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    assert data.find_domains(tmp_path) == (tmp_path / "trainA", tmp_path / "trainB")
    assert data.find_val_domains(tmp_path) == (None, None)
    (tmp_path / "testB").mkdir()
    assert data.find_val_domains(tmp_path) == (None, tmp_path / "testB")
    (tmp_path / "valA").mkdir()
    assert data.find_val_domains(tmp_path) == (tmp_path / "valA", None)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20))
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees to view
    im.save(tmp_path / "side.jpg", exif=exif)
    assert data.load_rgb(tmp_path / "side.jpg").size == (20, 40)


def test_augment_crops_any_size(tmp_path):
    rng = random.Random(0)
    for size in ((300, 200), (20, 30)):  # larger than the crop, and smaller
        out = data.augment(Image.new("RGB", size), load_size=36, crop=32, rng=rng)
        assert out.size == (32, 32)


def test_dataset_draws_are_fresh_but_reproducible(tmp_path):
    photos = write_images(tmp_path / "b", 5, seed=1)
    paintings = write_images(tmp_path / "a", 3, seed=2)
    ds = data.UnpairedDataset(photos, paintings, crop=32, load_size=40, seed=7)
    assert len(ds) == 5
    x, y = ds[0]
    assert x.shape == y.shape == (3, 32, 32) and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1
    again = data.UnpairedDataset(photos, paintings, crop=32, load_size=40, seed=7)
    assert torch.equal(again[0][0], x) and torch.equal(again[4][1], ds[4][1])
    epoch0 = [ds[i][0] for i in range(5)]
    ds.set_epoch(1)
    assert any(not torch.equal(a, ds[i][0]) for i, a in enumerate(epoch0))  # new crops each epoch
    assert sorted(ds.order_y[:3]) == [0, 1, 2]  # each painting once before any repeats


def test_image_pool_resumes_exactly():
    torch.manual_seed(0)
    pool = data.ImagePool(size=3, seed=1)
    for _ in range(4):
        pool.query(torch.rand(2, 3, 4, 4))
    clone = data.ImagePool(size=3, seed=99)
    clone.load_state_dict(pool.state_dict(), torch.device("cpu"))
    batch = torch.rand(2, 3, 4, 4)
    for _ in range(3):
        assert torch.equal(pool.query(batch), clone.query(batch))
    assert torch.equal(data.ImagePool(size=0).query(batch), batch)


def test_augment_mirrors_about_half_the_draws():
    """A coin-flip mirror: with the crop filling the image, some draws come back mirrored and
    the others as they were, and nothing else changes."""
    left_dark = Image.fromarray(np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None],
                                          32, 0).repeat(3, 2))
    mirrored = left_dark.transpose(Image.FLIP_LEFT_RIGHT)
    flips = []
    for seed in range(40):
        out = data.augment(left_dark, load_size=32, crop=32, rng=random.Random(seed))
        assert out.tobytes() in (left_dark.tobytes(), mirrored.tobytes())
        flips.append(out.tobytes() == mirrored.tobytes())
    assert 10 <= sum(flips) <= 30
