"""`vidgan eval`: held-out cycle/identity L1, the before/after grid, user errors."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import make_clip
from PIL import Image

from vidgan.core import modelfile
from vidgan.core.errors import VidganError
from vidgan.evaluation import heldout as evaluate
from vidgan.runtime import frames


def _images(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def layout(tmp_path):
    """A CycleGAN layout with 3 held-out photos (valB) and 2 paintings (valA)."""
    _images(tmp_path / "data" / "valB", 3, seed=1)
    _images(tmp_path / "data" / "valA", 2, seed=2)
    return tmp_path / "data"


@pytest.fixture
def g_and_self_inverse(tiny_model, tmp_path):
    """G, and G's own weights saved as its 'inverse' F (so F = G) beside it as g-F.safetensors."""
    g = tmp_path / "g.safetensors"
    shutil.copy(tiny_model, g)
    model, info = modelfile.load_model(g)
    modelfile.save_model(tmp_path / "g-F.safetensors", model, info.arch, info.kwargs,
                         direction="painting->photo")
    return g, model


def test_metrics_follow_their_definitions(layout, g_and_self_inverse, tmp_path):
    g, G = g_and_self_inverse
    photos, paintings = evaluate.held_out_images(layout)
    report = evaluate.evaluate_model(g, photos, paintings, out=tmp_path / "eval", grid_photos=3)

    m = report["metrics"]
    assert set(m) == {"change_x", "cycle_x", "idt_x", "change_y", "cycle_y", "idt_y"}
    assert all(math.isfinite(v) and 0 <= v <= 2 for v in m.values())
    # with F = G, F's identity loss on photos is how far G moves them, and vice versa
    assert m["idt_x"] == pytest.approx(m["change_x"], abs=1e-5)
    assert m["idt_y"] == pytest.approx(m["change_y"], abs=1e-5)
    x = torch.stack([frames.normalize(torch.from_numpy(np.array(Image.open(p))[None]))[0]
                     for p in photos])
    with torch.no_grad():
        expected = (G(G(x)) - x).abs().mean().item()
    assert m["cycle_x"] == pytest.approx(expected, abs=1e-4)
    assert report["inverse"].endswith("g-F.safetensors")
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == report


def test_grid_holds_photo_painting_pairs(layout, g_and_self_inverse, tmp_path):
    g, _ = g_and_self_inverse
    photos, paintings = evaluate.held_out_images(layout)
    report = evaluate.evaluate_model(g, photos, paintings, out=tmp_path / "eval", grid_photos=3)
    grid = Image.open(report["grid"])
    # 3 pairs, 2 pairs a row -> 2 rows of 2 x (photo | painting) at 256 px
    assert grid.size == (4 * 256, 2 * 256)
    top_left = np.asarray(grid)[:256, :256]
    assert np.array_equal(top_left, np.asarray(Image.open(photos[0])))


def test_without_inverse_only_g_metrics(layout, tiny_model, tmp_path):
    photos, paintings = evaluate.held_out_images(layout)
    report = evaluate.evaluate_model(tiny_model, photos, paintings, out=tmp_path / "eval")
    assert set(report["metrics"]) == {"change_x", "idt_y"}
    assert report["inverse"] is None and "inverse" in report["note"]
    assert "G-side metrics only" in evaluate.format_eval(report)


def test_held_out_images_fall_back_to_test_and_to_the_folder(tmp_path):
    _images(tmp_path / "t" / "testB", 2, seed=3)
    _images(tmp_path / "t" / "testA", 1, seed=4)
    photos, paintings = evaluate.held_out_images(tmp_path / "t")
    assert [p.parent.name for p in photos + paintings] == ["testB", "testB", "testA"]
    _images(tmp_path / "plain", 3, seed=5)
    photos, paintings = evaluate.held_out_images(tmp_path / "plain", limit=2)
    assert len(photos) == 2 and paintings == []


def test_inverse_must_map_paintings_to_photos(tiny_model):
    with pytest.raises(VidganError, match="painting->photo"):
        evaluate.inverse_path(tiny_model, inverse=tiny_model)


def test_cli_eval_prints_summary_and_writes_outputs(vidgan_cli, layout, g_and_self_inverse,
                                                    tmp_path):
    g, _ = g_and_self_inverse
    code, out, _ = vidgan_cli("eval", "--model", g, "--data", layout, "--out", tmp_path / "e")
    assert code == 0
    assert out.startswith("eval: 3 photos, 2 paintings") and "cycle photo" in out
    assert (tmp_path / "e" / "grid.png").is_file() and (tmp_path / "e" / "eval.json").is_file()
    before = (tmp_path / "e" / "eval.json").read_text()
    code, _, err = vidgan_cli("eval", "--model", g, "--data", layout, "--out", tmp_path / "e")
    assert code == 2 and "grid.png already exists; pass --overwrite" in err, err
    assert (tmp_path / "e" / "eval.json").read_text() == before
    code, _, _ = vidgan_cli("eval", "--model", g, "--data", layout, "--out", tmp_path / "e",
                            "--overwrite")
    assert code == 0


@pytest.mark.parametrize("case", ["no data folder", "no model", "no images", "no --data", "no --rendered"])
def test_cli_user_errors_are_one_line(vidgan_cli, tmp_path, tiny_model, case):
    (tmp_path / "empty").mkdir()
    args = {
        "no data folder": ["--model", tiny_model, "--data", tmp_path / "missing"],
        "no model": ["--model", tmp_path / "missing.safetensors", "--data", tmp_path / "empty"],
        "no images": ["--model", tiny_model, "--data", tmp_path / "empty"],
        "no --data": ["--model", tiny_model],
        "no --rendered": ["--video", tmp_path / "in.mp4"],
    }[case]
    code, _, err = vidgan_cli("eval", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_eval_video_reports_warping_error(vidgan_cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    code, out, _ = vidgan_cli("eval", "--video", clip, "--rendered", clip)
    assert code == 0
    assert "warping error" in out
