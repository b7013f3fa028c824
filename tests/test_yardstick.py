"""benchmarks/yardstick.py: its structure measure, its colour baseline and the judge's inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "yardstick.py"


@pytest.fixture(scope="module")
def yardstick():
    spec = importlib.util.spec_from_file_location("yardstick", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def photo():
    yy, xx = np.mgrid[0:64, 0:96]
    img = np.stack([xx * 2, yy * 3, (xx + yy) % 256], axis=-1).astype(np.uint8)
    img[20:40, 30:60] = (240, 220, 40)
    return img


def test_luminance_ssim_is_one_on_identical_images_and_falls_with_noise(yardstick, photo):
    rng = np.random.default_rng(0)
    assert yardstick.luminance_ssim(photo, photo.copy()) == pytest.approx(1.0)
    scores = []
    for sigma in (5, 20, 60):
        noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
        scores.append(yardstick.luminance_ssim(photo, noisy))
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_luminance_ssim_ignores_a_pure_hue_change(yardstick, photo):
    # swapping channels changes colours; SSIM on luma still sees structure, so it stays well above noise
    swapped = photo[..., [1, 2, 0]]
    noise = np.random.default_rng(1).integers(0, 256, photo.shape, dtype=np.uint8)
    assert yardstick.luminance_ssim(photo, swapped) > yardstick.luminance_ssim(photo, noise) + 0.2


def test_tint_moves_colour_statistics_and_keeps_structure(yardstick, photo):
    from skimage import color

    target_mean, target_std = np.array([55.0, 8.0, 25.0]), np.array([15.0, 10.0, 12.0])
    tinted = yardstick.tint(photo, target_mean, target_std)
    assert tinted.shape == photo.shape and tinted.dtype == np.uint8
    lab = color.rgb2lab(tinted)
    assert np.allclose(lab.mean((0, 1)), target_mean, atol=4)
    assert yardstick.luminance_ssim(photo, tinted) > 0.5


def test_judge_sees_the_same_square_of_any_image(yardstick):
    wide = Image.fromarray(np.zeros((100, 300, 3), np.uint8))
    assert yardstick.prepare(wide).shape == (128, 128, 3)
    judge = yardstick.Judge(yardstick.RECIPE["widths"]).eval()
    images = np.zeros((2, 128, 128, 3), np.uint8)
    scores = yardstick.painting_scores(judge, images)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_augment_gives_crops_in_range(yardstick):
    batch = torch.rand(4, 3, 128, 128) * 2 - 1
    out = yardstick.augment(batch, torch.Generator().manual_seed(0))
    crop = yardstick.RECIPE["crop"]
    assert out.shape == (4, 3, crop, crop) and out.min() >= -1 and out.max() <= 1
    again = yardstick.augment(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # deterministic for a seed


def test_measure_gives_the_photos_after_the_chosen_ones_apart(yardstick, tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    for folder, count in (("trainA", 2), ("valB", 5)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / folder / f"{i}.png")
    judge = yardstick.Judge(yardstick.RECIPE["widths"]).eval()

    result = yardstick.measure(tiny_model, tmp_path, judge, None, chosen_on=3)

    last_two = yardstick.stylize_all(tiny_model, sorted((tmp_path / "valB").iterdir())[3:])
    ssim = np.mean([yardstick.luminance_ssim(photo, out) for photo, out in last_two])
    assert result["stylized_unseen"]["ssim_mean"] == pytest.approx(ssim, abs=1e-4)
    assert "on the 2 photos after the first 3" in yardstick.verdict(result)
    assert "stylized_unseen" not in yardstick.measure(tiny_model, tmp_path, judge, None)
