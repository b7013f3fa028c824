"""`vidgan demo`: the built-in clip, its rendering, demo.png, and the camera path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from vidgan.core import modelfile
from vidgan.core.images import SAMPLES, sample_photos
from vidgan.pipelines import demo
from vidgan.runtime.stylizer import Stylizer
from vidgan.runtime.video import VideoReader, probe


def _decoded(path):
    return [f.image for f in VideoReader(probe(path))]


def test_clip_frames_have_the_size_and_move_smoothly():
    photos = sample_photos()
    assert len(photos) == len(SAMPLES) and all(p.ndim == 3 and p.shape[2] == 3 for p in photos)
    total = 24
    clip = [demo.clip_frame(photos, i, total, (160, 90)) for i in range(total)]
    assert all(f.shape == (90, 160, 3) and f.dtype == np.uint8 for f in clip)
    steps = [np.abs(a.astype(int) - b).mean() for a, b in itertools.pairwise(clip)]
    within_shots = [s for i, s in enumerate(steps) if (i + 1) % (total // len(photos))]
    assert min(within_shots) > 0  # the view keeps moving
    assert max(within_shots) < 0.5 * max(steps)  # ... smoothly; the cuts between photos are jumps


def test_demo_writes_clip_and_before_after_png(tiny_model, tmp_path):
    out = tmp_path / "demo.mp4"
    result = demo.run_demo(out, Stylizer.build(tiny_model), seconds=1, size=(96, 64), fps=8)

    decoded = _decoded(out)
    assert result.frames == len(decoded) == 8
    assert all(f.shape == (64, 96, 3) for f in decoded)
    png = Image.open(tmp_path / "demo.png")
    # 3 stills (one per photo), 240 px tall each, before above after
    assert png.size == (3 * 360, 2 * 240)
    assert not list(tmp_path.glob("*partial*"))


def test_demo_without_bundled_model_says_so(monkeypatch, tmp_path, vidgan_cli):
    monkeypatch.setattr(modelfile, "BUNDLED", tmp_path / "missing.safetensors")
    monkeypatch.setattr(modelfile, "REALTIME", tmp_path / "missing-too.safetensors")
    code, _, err = vidgan_cli("demo", "--out", tmp_path / "demo.mp4")
    assert code == 2 and "bundled model" in err, err
    assert not (tmp_path / "demo.mp4").exists()


def test_demo_from_a_live_source(tiny_model, clip, tmp_path):
    from vidgan.pipelines.live import open_source

    out = tmp_path / "cam.mp4"
    result = demo.run_demo(out, Stylizer.build(tiny_model), source=open_source(input=clip),
                           seconds=1)
    assert 0 < result.frames <= 12 and len(_decoded(out)) == result.frames
    assert Image.open(tmp_path / "cam.png").height == 2 * 240
    assert not (tmp_path / "cam.recording.mp4").exists()


@pytest.mark.parametrize("existing", ["holiday.mp4", "holiday.png"])
def test_demo_does_not_replace_the_users_files(tiny_model, tmp_path, vidgan_cli, existing):
    (tmp_path / existing).write_text("mine")
    code, _, err = vidgan_cli("demo", "--out", tmp_path / "holiday.mp4", "--model", tiny_model)
    assert code == 2 and err.startswith("error: ") and "--overwrite" in err, err
    assert (tmp_path / existing).read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_demo_overwrite_replaces_both(tiny_model, tmp_path):
    for name in ("demo.mp4", "demo.png"):
        (tmp_path / name).write_text("old")
    demo.run_demo(tmp_path / "demo.mp4", Stylizer.build(tiny_model), seconds=0.5, size=(64, 48),
                  fps=8, overwrite=True)
    assert len(_decoded(tmp_path / "demo.mp4")) == 4
    assert Image.open(tmp_path / "demo.png").height == 2 * 240
