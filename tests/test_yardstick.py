"""benchmarks/yardstick.py: its edits, its two-view judges, its robustness table, its verdicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "yardstick.py"


@pytest.fixture(scope="module")
def ys():
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


class Constant(nn.Module):
    """A judge that gives every image the same logit."""

    def __init__(self, logit: float):
        super().__init__()
        self.logit = logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.logit)


class LikesSoftImages(nn.Module):
    """A judge fooled by softness: the less fine detail, the more 'painting'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detail = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
        return 40 * (0.05 - detail)


def test_luminance_ssim_is_one_on_identical_images_and_falls_with_noise(ys, photo):
    rng = np.random.default_rng(0)
    assert ys.luminance_ssim(photo, photo.copy()) == pytest.approx(1.0)
    scores = []
    for sigma in (5, 20, 60):
        noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
        scores.append(ys.luminance_ssim(photo, noisy))
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_colour_transfer_moves_lab_statistics_and_keeps_structure(ys, photo):
    target = np.array([[55.0, 8.0, 25.0], [15.0, 10.0, 12.0]])
    moved = ys.colour_transfer(photo, target)
    assert moved.shape == photo.shape and moved.dtype == np.uint8
    assert np.allclose(ys.lab_stats(moved)[0], target[0], atol=4)
    assert ys.luminance_ssim(photo, moved) > 0.5


def test_random_edits_follow_the_seed_and_leave_some_images_alone(ys, photo):
    palettes = np.stack([ys.lab_stats(photo), ys.lab_stats(255 - photo)])
    first = [ys.random_edit(photo, np.random.default_rng(s), palettes) for s in range(40)]
    again = [ys.random_edit(photo, np.random.default_rng(s), palettes) for s in range(40)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    untouched = sum(np.array_equal(e, photo) for e in first)
    assert 0 < untouched < 40 and all(e.shape == photo.shape and e.dtype == np.uint8 for e in first)


def test_every_probe_but_untouched_changes_the_photo(ys, photo):
    big = ys.square(photo)
    palette = np.array([[60.0, 5.0, 30.0], [20.0, 12.0, 15.0]])
    for name, (edit, _) in ys.probes(palette).items():
        out = edit(big, 0)
        assert out.shape == big.shape and out.dtype == np.uint8, name
        assert np.array_equal(out, big) == (name == "untouched"), name


def test_an_image_is_a_painting_only_when_both_views_say_so(ys, photo):
    images = np.stack([ys.square(photo)] * 3)
    both = ys.Judges({"native": Constant(5.0), "whole": Constant(5.0)})
    split = ys.Judges({"native": Constant(5.0), "whole": Constant(-5.0)})
    assert np.all(both.scores(images) > 0.5)
    assert np.all(split.scores(images) < 0.5)


def _layout(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):  # fine detail everywhere: a blur removes most of it
            base = np.stack([xx, yy, (xx * yy) % 256], -1) + rng.integers(0, 60, (256, 256, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / folder / f"{i}.png")
    return root


def test_the_robustness_table_catches_a_judge_fooled_by_softness(ys, tmp_path):
    data = _layout(tmp_path, {"trainA": 2, "valA": 2, "valB": 4})
    fooled = ys.robustness(ys.Judges({"native": LikesSoftImages(), "whole": LikesSoftImages()}), data, None)
    assert fooled["photos"]["blurred (sigma 1.5 px)"]["called_painting"] == 1.0
    assert fooled["photos"]["untouched"]["called_painting"] == 0.0
    assert not fooled["probes_pass"]
    # a second view that is not fooled vetoes the first
    vetoed = ys.robustness(ys.Judges({"native": LikesSoftImages(), "whole": Constant(-5.0)}), data, None)
    assert vetoed["probes_pass"] and vetoed["worst_probe"] == 0.0
    assert vetoed["photos"]["blurred (sigma 1.5 px)"]["by_view"]["native"] == 1.0


def test_measure_gives_the_unseen_photos_apart_and_counts_both_targets(ys, tiny_model, monkeypatch):
    monkeypatch.setattr(ys, "CHOICE", 3)
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    judges = ys.Judges({"native": Constant(5.0), "whole": Constant(5.0)})

    report, outputs, scores = ys.measure(judges, tiny_model, photos)

    assert report["choice"]["photos"] == 3 and report["unseen"]["photos"] == 2
    ssim = np.array([ys.luminance_ssim(p, o) for p, o in zip(photos[3:], outputs[3:])])
    assert report["unseen"]["ssim_mean"] == pytest.approx(ssim.mean(), abs=1e-4)
    # every output is called a painting, so "both" is exactly the share with SSIM >= 0.5
    assert report["unseen"]["painting_and_ssim"] == pytest.approx((ssim >= 0.5).mean(), abs=1e-4)
    assert "on the 2 unseen valB photos" in ys.verdict(report)
    sheet = ys.contact_sheet(photos, outputs, scores, n=2)
    assert sheet.shape == (512, 4 * 256, 3)
