"""`vidgan distill`: a student learns a teacher's output; the temporal term; the default model."""

from __future__ import annotations

import csv
import math
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.core import modelfile
from vidgan.core.errors import VidganError
from vidgan.train import distill
from vidgan.train.distill import DistillConfig, temporal_loss, warp

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_STUDENT = {"width": 8, "n_blocks": 1, "n_context": 1, "expand": 2}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Eight smooth 48x48 photos with edges (gradients plus a bright disc)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(8):
        base = rng.uniform(0, 255, 3)
        img = (base + np.stack([xx * 2, yy * 2, (xx + yy)], -1)) % 256
        cy, cx = rng.integers(10, 38, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 60] = 240
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))


def _config(tiny_model, photos, out, **overrides) -> DistillConfig:
    values = {"teacher": str(tiny_model), "photos": photos and str(photos), "out": str(out),
              "student": "realtime", "student_kwargs": TINY_STUDENT, "load_size": 48, "crop": 32,
              "batch_size": 2, "steps": 40, "lr": 3e-3, "log_every": 1, "sample_every": 1000,
              "checkpoint_every": 1000, "device": "cpu"}
    values.update(overrides)
    return DistillConfig(**values)


def _rows(run):
    with (run / "losses.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_tiny_distillation_lowers_its_loss_and_writes_a_student(tiny_model, photos, tmp_path):
    path = distill.distill(_config(tiny_model, photos, tmp_path / "run"))
    rows = _rows(tmp_path / "run")
    first = np.mean([float(r["l1"]) for r in rows[:5]])
    last = np.mean([float(r["l1"]) for r in rows[-5:]])
    assert last < 0.85 * first, (first, last)
    info = modelfile.read_info(path)
    assert (info.arch, info.kwargs, info.direction) == ("realtime", TINY_STUDENT, "photo->painting")
    assert info.training["distilled_from"]["hash"] == modelfile.file_hash(tiny_model)
    assert (tmp_path / "run" / "losses.png").is_file()
    grid = Image.open(tmp_path / "run" / "samples" / "latest.png")
    assert grid.size == (3 * 48, 4 * 48)  # photo | teacher | student, four held-out photos


@pytest.fixture(scope="module")
def layout(photos, tmp_path_factory):
    """A CycleGAN layout: the photos in trainB, warm-tinted copies of them as trainA paintings."""
    root = tmp_path_factory.mktemp("layout")
    for folder in ("trainA", "trainB"):
        (root / folder).mkdir()
    for path in sorted(photos.iterdir()):
        image = np.asarray(Image.open(path), np.float32)
        Image.open(path).save(root / "trainB" / path.name)
        tinted = 0.5 * image + 0.5 * np.array([250, 200, 40])
        Image.fromarray(tinted.astype(np.uint8)).save(root / "trainA" / path.name)
    return root


@pytest.mark.parametrize("lambda_adv, adversary", [(0.0, "teacher"), (0.1, "teacher"), (0.1, "paintings")])
def test_resume_continues_exactly(tiny_model, layout, tmp_path, lambda_adv, adversary):
    extra = {"lambda_adv": lambda_adv, "adversary": adversary, "data": str(layout),
             "discriminator_kwargs": {"ndf": 4, "n_layers": 2}}
    straight = distill.distill(_config(tiny_model, None, tmp_path / "a", steps=6, **extra))
    distill.distill(_config(tiny_model, None, tmp_path / "b", steps=6, max_steps=3, **extra))
    cfg = distill.resumed_config(tmp_path / "b", {"max_steps": 6})
    resumed = distill.distill(cfg, resume=True)
    a, _ = modelfile.load_model(straight)
    b, _ = modelfile.load_model(resumed)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_copied_run_resumes_in_the_copy(tiny_model, photos, tmp_path):
    distill.distill(_config(tiny_model, photos, tmp_path / "a", steps=4, max_steps=2))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    path = distill.distill(distill.resumed_config(tmp_path / "b", {"max_steps": 4}), resume=True)
    assert path == tmp_path / "b" / "model.safetensors"
    assert [r["step"] for r in _rows(tmp_path / "b")][-1] == "4"
    assert [r["step"] for r in _rows(tmp_path / "a")][-1] == "2"


def test_the_adversarial_term_alone_moves_the_student_and_trains_its_discriminator(tiny_model, photos,
                                                                                   tmp_path):
    cfg = _config(tiny_model, photos, tmp_path / "run", lambda_l1=0.0, lambda_grad=0.0,
                  lambda_temporal=0.0, lambda_adv=1.0, discriminator_kwargs={"ndf": 4, "n_layers": 2})
    model = distill.Distiller(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in model.student.parameters()]
    disc_before = [p.detach().clone() for p in model.disc.parameters()]
    x, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = model.step(x, target, step=0)
    assert {"adv", "d"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.student.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, model.disc.parameters()))
    without = distill.Distiller(_config(tiny_model, photos, tmp_path / "r2"), torch.device("cpu"))
    assert without.disc is None and "adv" not in without.step(x, target, step=0)


def test_feature_matching_compares_the_adversarys_features_of_student_and_teacher(tiny_model, photos,
                                                                                   tmp_path):
    cfg = _config(tiny_model, photos, tmp_path / "run", lambda_adv=0.1, lambda_fm=1.0,
                  discriminator_kwargs={"ndf": 4, "n_layers": 2})
    model = distill.Distiller(cfg, torch.device("cpu"))
    x, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    features = model.disc.features(x)
    assert len(features) == 3 + 1 and torch.equal(features[-1], model.disc(x))
    assert model._adversarial_losses(target, target)["fm"] == 0
    out = x.clone().requires_grad_(True)
    fm = model._adversarial_losses(out, target)["fm"]
    fm.backward()
    assert fm > 0 and out.grad.abs().sum() > 0
    assert "fm" in model.step(x, target, step=0)
    for unfit in ({"lambda_adv": 0.0}, {"lambda_adv": 0.1, "adversary": "paintings"}):
        with pytest.raises(VidganError, match="lambda_fm needs"):
            _config(tiny_model, photos, tmp_path / "run", lambda_fm=1.0, **unfit)


def test_the_paintings_adversary_sees_crops_of_the_paintings(tiny_model, layout, tmp_path):
    cfg = _config(tiny_model, None, tmp_path / "run", data=str(layout), lambda_adv=0.1,
                  adversary="paintings")
    paintings = distill._paintings(cfg)
    assert sorted(p.parent.name for p in paintings) == ["trainA"] * 8
    cache = distill.TeacherCache(tiny_model, cfg.load_size)
    cache.fill(distill._photos(cfg)[0], distill.TorchTeacher(tiny_model, torch.device("cpu")), print)
    x, y, p = distill.PairDataset(distill._photos(cfg)[0], cache, cfg, paintings)[3]
    assert p.shape == x.shape == y.shape
    # half of every painting pixel is (250, 200, 40): red never low, blue never high
    assert p[0].min() > -0.05 and p[2].max() < 0.2
    assert not torch.equal(p, y)


def test_a_paintings_adversary_needs_a_layout(tiny_model, photos, tmp_path):
    cfg = _config(tiny_model, photos, tmp_path / "run", lambda_adv=0.1, adversary="paintings")
    with pytest.raises(VidganError, match="needs --data"):
        distill.distill(cfg)
    with pytest.raises(VidganError, match="adversary must be"):
        _config(tiny_model, photos, tmp_path / "run", adversary="photos")


def test_the_teacher_runs_once_per_photo(tiny_model, photos, tmp_path):
    cfg = _config(tiny_model, photos, tmp_path / "a", steps=2)
    distill.distill(cfg)
    cache = distill.TeacherCache(tiny_model, cfg.load_size)
    stamps = {p: p.stat().st_mtime_ns for p in cache.folder.iterdir()}
    assert len(stamps) == 8
    distill.distill(_config(tiny_model, photos, tmp_path / "b", steps=2))
    assert {p: p.stat().st_mtime_ns for p in cache.folder.iterdir()} == stamps


def test_the_teacher_cache_follows_contents_not_paths(tiny_model, photos, tmp_path):
    first, second = sorted(photos.iterdir())[:2]
    cache = distill.TeacherCache(tiny_model, 32)
    copy = tmp_path / "copied" / first.name
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    assert cache.path(copy) == cache.path(first)
    assert cache.path(second) != cache.path(first)


def _shift(dx: int, dy: int, size: int = 32) -> torch.Tensor:
    """An affine_grid theta that moves the image content dx px right and dy px down."""
    return torch.tensor([[[1.0, 0, -2 * dx / size], [0, 1.0, -2 * dy / size]]])


class _PositionDependent(torch.nn.Module):
    """Adds a horizontal ramp: its output depends on where the content is, as borders do."""

    def forward(self, x):
        return x + torch.linspace(-1, 1, x.shape[-1]).view(1, 1, 1, -1)


def test_temporal_term_is_zero_only_for_a_shift_equivariant_student():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    theta = _shift(3, -2)
    moved = warp(x, theta)
    assert torch.allclose(moved[..., 5:-5, 5:-5], torch.roll(x, (-2, 3), (2, 3))[..., 5:-5, 5:-5],
                          atol=1e-5)  # the warp is the known shift
    pointwise = torch.nn.Conv2d(3, 3, 1)  # no spatial extent: exactly equivariant
    assert temporal_loss(pointwise, x, theta, margin=4).item() < 1e-6
    assert temporal_loss(_PositionDependent(), x, theta, margin=4).item() > 0.05


def test_random_warps_stay_within_their_limits():
    theta = distill.random_warps(200, torch.Generator().manual_seed(0), (64, 64), shift=6,
                                 zoom=0.04, rotate=2)
    shift_px = theta[:, :, 2].abs() * 32
    assert shift_px.max() <= 6 / (1 - 0.04) + 1e-4 and shift_px.max() > 4
    angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0]).abs()
    assert angle.max() <= math.radians(2) + 1e-4


# --- the default model, per device ----------------------------------------------------------


@pytest.mark.parametrize(("device", "realtime", "expected"), [
    ("cpu", True, modelfile.REALTIME),
    ("cpu", False, modelfile.BUNDLED),
    ("cuda", True, modelfile.BUNDLED),
    ("cuda", False, modelfile.BUNDLED),
])
def test_default_model_per_device(device, realtime, expected):
    assert modelfile.choose(None, None, torch.device(device), realtime) == expected


def test_quality_picks_a_bundled_model_and_refuses_to_shadow_model(tiny_model):
    cpu = torch.device("cpu")
    assert modelfile.choose(None, "best", cpu, realtime=True) == modelfile.BUNDLED
    assert modelfile.choose(None, "fast", cpu, realtime=False) == modelfile.REALTIME
    assert modelfile.choose(tiny_model, None, cpu, realtime=True) == tiny_model
    with pytest.raises(VidganError, match="drop it"):
        modelfile.choose(tiny_model, "fast", cpu, realtime=True)
    with pytest.raises(VidganError, match="fast or best"):
        modelfile.choose(None, "medium", cpu, realtime=True)


def test_stylize_says_which_model_ran(vidgan_cli, photos, tmp_path):
    src = next(photos.iterdir())
    for quality, name in (("fast", modelfile.REALTIME.name), ("best", modelfile.BUNDLED.name)):
        result = vidgan_cli("stylize", src, tmp_path / f"{quality}.png", "--quality", quality,
                            "--device", "cpu", "--backend", "torch")
        assert result.code == 0, result.err
        assert name in result.out


# --- errors: one line each ------------------------------------------------------------------


def _one_line_error(result, needle: str) -> None:
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.err


def test_missing_teacher(vidgan_cli, photos, tmp_path):
    result = vidgan_cli("distill", "--teacher", tmp_path / "nope.safetensors", "--photos", photos,
                        "--out", tmp_path / "run")
    _one_line_error(result, "does not exist")


def test_teacher_that_is_not_photo_to_painting(vidgan_cli, photos, tmp_path):
    from vidgan.core import models

    inverse = modelfile.save_model(tmp_path / "F.safetensors", models.build("fast", ngf=4, n_blocks=1),
                                   "fast", {"ngf": 4, "n_blocks": 1}, direction="painting->photo")
    result = vidgan_cli("distill", "--teacher", inverse, "--photos", photos, "--out", tmp_path / "run")
    _one_line_error(result, "painting->photo")


def test_unknown_student_architecture(vidgan_cli, tiny_model, photos, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('student = "transformer"\n')
    result = vidgan_cli("distill", recipe, "--teacher", tiny_model, "--photos", photos,
                        "--out", tmp_path / "run")
    _one_line_error(result, "unknown student architecture 'transformer'")


@pytest.mark.parametrize(("recipe", "flags", "needle"), [
    ('crop = "big"\n', [], "crop"),
    ("", ["--max-steps", "0"], "max_steps must be at least 1"),
    ("", ["--lr", "-1"], "--lr must be a positive number"),
])
def test_bad_recipe_and_option_values(vidgan_cli, tiny_model, photos, tmp_path, recipe, flags,
                                      needle):
    path = tmp_path / "r.toml"
    path.write_text(recipe)
    result = vidgan_cli("distill", path, "--teacher", tiny_model, "--photos", photos,
                        "--out", tmp_path / "run", *flags)
    _one_line_error(result, needle)
    assert not (tmp_path / "run").exists()


def test_info_describes_a_distilled_model(vidgan_cli):
    result = vidgan_cli("info", "--model", modelfile.REALTIME)
    assert result.code == 0, result.err
    assert f"distilled from     {modelfile.BUNDLED.name} (fast, sha256[:16] " in result.out
    assert "epochs" not in result.out
    assert ("pixel + gradient + temporal L1 + adversarial against the teacher's outputs + feature "
            "matching") in result.out
    assert "vangogh-realtime.toml: crop 128, batch 8" in result.out


def test_sigterm_saves_a_checkpoint_that_resumes(tiny_model, photos, tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import cli_code, signal_when

    run = tmp_path / "run"
    code = cli_code("distill", "--teacher", tiny_model, "--photos", photos, "--out", run,
                    "--steps", 100000, "--crop", 32, "--batch-size", 2, "--device", "cpu")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    status, err = signal_when(proc, lambda: (run / "losses.csv").is_file()
                              and len((run / "losses.csv").read_text().splitlines()) > 2,
                              signal.SIGTERM)
    assert status == 130, err  # as `vidgan train`: the step finishes, the checkpoint is kept
    assert err.strip().splitlines()[-1].startswith("interrupted at step "), err
    cfg = distill.resumed_config(run, {"max_steps": 1})  # the saved one is readable
    assert cfg.steps == 100000 and "Traceback" not in err
