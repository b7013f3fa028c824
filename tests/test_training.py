"""`vidgan train` on tiny generators and images: learning, exact resume, Ctrl-C, DDP, outputs."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.core import modelfile
from vidgan.core.errors import VidganError
from vidgan.train import cyclegan as training
from vidgan.train import recipes, trainlog

TINY_RECIPE = """
generator = "fast"
generator_kwargs = { ngf = 4, n_blocks = 1 }
discriminator_kwargs = { ndf = 8 }
crop = 32
epochs = 2
decay_epochs = 1
pool_size = 4
log_every = 1
sample_size = 32
"""
# Subprocesses get one thread: two busy cores make more threads many times slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.usefixtures("one_thread")


def write_domain(folder: Path, n: int, tint: tuple, seed: int, size: int = 40) -> None:
    """Smooth colour gradients with a domain tint: easy to reconstruct, easy to tell apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1, 3)
        img = np.stack([a * xx, b * yy, c * (1 - xx) * yy], -1) * 255
        img = 0.7 * img + 0.3 * np.array(tint) * 255
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def make_dataset(root: Path, photos: int = 6, paintings: int = 5, size: int = 40) -> Path:
    write_domain(root / "trainA", paintings, (1.0, 0.8, 0.2), seed=1, size=size)
    write_domain(root / "trainB", photos, (0.1, 0.3, 0.9), seed=2, size=size)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "tiny.toml"
    path.write_text(TINY_RECIPE)
    return path


def tiny_config(recipe: Path, data: Path, out: Path, **overrides) -> training.TrainConfig:
    return recipes.load_config(
        training.TrainConfig, str(recipe), {"data": str(data), "out": str(out), **overrides}
    )


def loss_rows(run: Path) -> list[dict]:
    with (run / "losses.csv").open() as f:
        return list(csv.DictReader(f))


# --- learning and outputs ---------------------------------------------------------------


def test_short_run_lowers_the_cycle_loss(tmp_path, recipe):
    data = make_dataset(tmp_path / "data", photos=30, paintings=30)
    cfg = tiny_config(
        recipe, data, tmp_path / "run", max_steps=30, lr=1e-3, epochs=1, decay_epochs=0
    )
    training.train(cfg)
    cycle = [float(r["cycle_x"]) + float(r["cycle_y"]) for r in loss_rows(tmp_path / "run")]
    assert len(cycle) == 30
    assert np.mean(cycle[-5:]) < 0.7 * np.mean(cycle[:5])


def test_total_variation_measures_pixel_level_change():
    stripes = torch.ones(1, 3, 8, 8)
    stripes[..., ::2] = -1  # columns alternate: every horizontal neighbour differs by 2
    assert training.total_variation(torch.zeros(1, 3, 8, 8)) == 0
    assert training.total_variation(stripes) == pytest.approx(2.0)
    assert training.total_variation(stripes.transpose(2, 3)) == pytest.approx(2.0)


def test_lambda_tv_makes_smoother_translations(tmp_path, recipe):
    data = make_dataset(tmp_path / "data", photos=20, paintings=20)
    tv = {}
    for weight in (0.0, 5.0):
        run = tmp_path / f"run-{weight}"
        cfg = tiny_config(recipe, data, run, max_steps=20, lr=1e-3, epochs=1, decay_epochs=0,
                          lambda_tv=weight)
        training.train(cfg)
        tv[weight] = np.mean([float(r["tv_y"]) + float(r["tv_x"]) for r in loss_rows(run)[-5:]])
    assert tv[5.0] < 0.8 * tv[0.0]


def test_run_writes_checkpoint_samples_plot_and_model_files(
    tmp_path, recipe, dataset, monkeypatch, capsys
):
    from vidgan.train import trainlog

    monkeypatch.setattr(trainlog, "PLAIN_EVERY", 0.0)
    run = tmp_path / "run"
    cfg = tiny_config(recipe, dataset, run, epochs=1)
    assert training.train(cfg) == run / "model.safetensors"
    # stderr is not a terminal here: plain progress lines instead of a live bar
    err = capsys.readouterr().err
    assert "train: 6/6 steps (100.0%)  epoch 1" in err and "/s  ETA 0:00:00  adv " in err
    assert err.strip().endswith(f"model file {run / 'model.safetensors'}")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000006.pt"]
    assert {p.name for p in (run / "samples").iterdir()} == {"epoch-0001.png", "latest.png"}
    # 4 photos and 4 paintings, each: input | translated | reconstructed
    assert Image.open(run / "samples" / "latest.png").size == (3 * 32, 8 * 32)
    assert (run / "losses.png").stat().st_size > 0
    assert not list(run.rglob("*.partial*"))

    ckpt = torch.load(run / "checkpoints" / "step-000000006.pt", weights_only=False)
    assert ckpt["config"] == recipes.saved_config(cfg)  # the resolved config, flags included
    assert ckpt["config"]["version"] == modelfile.CONFIG_VERSION
    assert ckpt["config"]["recipe"]["epochs"] == 1 and ckpt["config"]["recipe"]["recipe"] == "tiny.toml"
    assert ckpt["config"]["run"]["data"] == str(dataset)  # a resume needs to know
    assert ckpt["state"] == {**ckpt["state"], "epoch": 1, "batch": 0, "step": 6}

    G, info = modelfile.load_model(run / "model.safetensors")
    F, info_f = modelfile.load_model(run / "model-F.safetensors")
    assert (info.arch, info.kwargs, info.direction) == (
        "fast",
        {"ngf": 4, "n_blocks": 1},
        "photo->painting",
    )
    assert info_f.direction == "painting->photo"
    # the model file has the recipe, and no path of the machine it trained on
    assert info.config == {"version": modelfile.CONFIG_VERSION, "recipe": ckpt["config"]["recipe"]}
    assert str(dataset) not in (run / "model.safetensors").read_bytes().decode("latin-1")
    assert info.training["steps"] == 6 and set(info.training["final_losses"]) >= {"cycle_x", "d_y"}
    for net, key in ((G, "G"), (F, "F")):
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, ckpt[key][name])


def test_export_only_writes_the_model_files_of_a_checkpoint(tmp_path, recipe, dataset, vidgan_cli):
    run = tmp_path / "run"
    training.train(tiny_config(recipe, dataset, run, epochs=1))
    expected, _ = modelfile.load_model(run / "model.safetensors")
    (run / "model.safetensors").unlink()
    ckpt = training.latest_checkpoint(run, training.CHECKPOINT_KEYS)
    code, out, _ = vidgan_cli("train", "--export-only", ckpt)
    assert code == 0 and str(run / "model.safetensors") in out
    G, info = modelfile.load_model(run / "model.safetensors")
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        assert torch.equal(G(x), expected(x))
    assert info.training["steps"] == 6 and info.training["final_losses"]


# --- exact resume -------------------------------------------------------------------------


def _resume_chain(recipe, data, run, stops, total, **overrides) -> None:
    """Train in pieces: stop after each step count in `stops`, resume, until `total`."""
    training.train(tiny_config(recipe, data, run, max_steps=stops[0], **overrides))
    for steps in (*stops[1:], total):
        training.train(training.resumed_config(run, {"max_steps": steps}), resume=True)


def _assert_same_losses(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for k in trainlog.LOSS_NAMES:
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-4, abs=1e-5), (ra["step"], k)


def test_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path, recipe, dataset):
    # 6 steps per epoch, 2 epochs. Stops: mid-epoch 1, at the epoch boundary, mid-epoch 2.
    training.train(tiny_config(recipe, dataset, tmp_path / "straight", max_steps=12))
    _resume_chain(recipe, dataset, tmp_path / "pieces", stops=(3, 6, 8), total=12)
    _assert_same_losses(loss_rows(tmp_path / "straight"), loss_rows(tmp_path / "pieces"))
    a, _ = modelfile.load_model(tmp_path / "straight" / "model.safetensors")
    b, _ = modelfile.load_model(tmp_path / "pieces" / "model.safetensors")
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(ta, tb, msg=name)


def test_resume_keeps_unet_dropout_in_step(tmp_path, recipe):
    # The U-Net draws dropout masks from the global RNG: resume must restore it exactly.
    data = make_dataset(tmp_path / "data", photos=3, paintings=2, size=256)
    unet = {"generator": "unet", "generator_kwargs": {"ngf": 4}, "crop": 256, "sample_size": 256}
    training.train(tiny_config(recipe, data, tmp_path / "straight", max_steps=3, **unet))
    _resume_chain(recipe, data, tmp_path / "pieces", stops=(1,), total=3, **unet)
    _assert_same_losses(loss_rows(tmp_path / "straight"), loss_rows(tmp_path / "pieces"))


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path, recipe, dataset, vidgan_cli):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidgan",
            "train",
            str(recipe),
            "--data",
            str(dataset),
            "--out",
            str(run),
            "--epochs",
            "1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 90
    while not ((run / "losses.csv").exists() and len(loss_rows(run)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    ckpt = training.latest_checkpoint(run, training.CHECKPOINT_KEYS)
    step = torch.load(ckpt, weights_only=False)["state"]["step"]
    assert step >= 2 and len(loss_rows(run)) == step

    code, _, err = vidgan_cli("train", "--resume", "--out", run, "--max-steps", step + 2)
    assert code == 0, err
    assert [int(r["step"]) for r in loss_rows(run)] == list(range(1, step + 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mixed_precision_run(tmp_path, recipe, dataset):
    cfg = tiny_config(recipe, dataset, tmp_path / "run", max_steps=4, device="cuda")
    training.train(cfg)
    assert all(
        np.isfinite(float(r[k])) for r in loss_rows(tmp_path / "run") for k in trainlog.LOSS_NAMES
    )
    gan = training.CycleGAN(cfg, torch.device("cuda"))
    assert gan.amp_dtype in (torch.bfloat16, torch.float16)
    assert gan.scaler.is_enabled() == (gan.amp_dtype == torch.float16)
    conv = next(m for m in gan.gens.G.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_copied_run_resumes_in_the_copy(tmp_path, recipe, dataset):
    training.train(tiny_config(recipe, dataset, tmp_path / "a", max_steps=1))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    training.train(training.resumed_config(tmp_path / "b", {"max_steps": 2}), resume=True)
    assert [int(r["step"]) for r in loss_rows(tmp_path / "b")] == [1, 2]
    assert [int(r["step"]) for r in loss_rows(tmp_path / "a")] == [1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_resumes(tmp_path, recipe, dataset):
    run = tmp_path / "run"
    training.train(tiny_config(recipe, dataset, run, max_steps=2, device="cuda"))
    training.train(training.resumed_config(run, {"max_steps": 4}), resume=True)
    assert [int(r["step"]) for r in loss_rows(run)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("want", "world", "local", "current", "expected"),
    [
        ("cuda", 1, 0, 0, "cuda:0"),
        ("cuda", 1, 0, 2, "cuda:2"),  # the current device, as a bare "cuda" means
        ("cuda:1", 1, 0, 0, "cuda:1"),
        ("cuda", 2, 1, 0, "cuda:1"),  # torchrun: the GPU of LOCAL_RANK
        ("cpu", 1, 0, 0, "cpu"),
    ],
)
def test_training_device_has_the_index_set_device_needs(want, world, local, current, expected):
    assert str(training.training_device(want, world, local, current)) == expected


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_checkpoint_loads_onto_any_training_device(tmp_path, recipe, dataset):
    # Resume on a GPU loads onto the GPU. The meta device stands in for it here: the checkpoint
    # must be read onto the CPU (RNG states stay CPU ByteTensors) and copied to the models.
    run = tmp_path / "run"
    cfg = tiny_config(recipe, dataset, run, max_steps=2)
    training.train(cfg)
    ckpt = training.latest_checkpoint(run, training.CHECKPOINT_KEYS)
    saved = torch.load(ckpt, weights_only=False)
    torch.manual_seed(123)
    gan = training.CycleGAN(cfg, torch.device("meta"))
    assert training._load_checkpoint(ckpt, gan)["step"] == 2
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert next(gan.gens.parameters()).device.type == "meta"
    assert all(im.device.type == "meta" for im in gan.pool_x.images)


# --- DDP ----------------------------------------------------------------------------------


@pytest.mark.slow  # three Python processes importing torch: ~30 s on two busy cores
def test_torchrun_two_processes_gloo(tmp_path, recipe):
    data = make_dataset(tmp_path / "data", photos=4, paintings=4)
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "vidgan",
            "train",
            str(recipe),
            "--data",
            str(data),
            "--out",
            str(run),
            "--epochs",
            "2",
            "--device",
            "cpu",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # 4 images on 2 ranks at batch 1: 2 steps per epoch
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000004.pt"]
    assert proc.stderr.count("done: 4 steps") == 1  # only rank 0 reports and writes
    assert [int(r["step"]) for r in loss_rows(run)] == [1, 2, 3, 4]
    assert modelfile.read_info(run / "model.safetensors").training["steps"] == 4


# --- recipes and config -------------------------------------------------------------------


@pytest.mark.parametrize("name", recipes.bundled_recipes())
def test_every_shipped_recipe_loads(name):
    from vidgan.train.distill import DistillConfig

    path = recipes.recipe_path(name)
    student = "student" in recipes.tomllib.loads(path.read_text())  # a `vidgan distill` recipe
    config = DistillConfig if student else training.TrainConfig
    cfg = recipes.load_config(config, name, {"data": "somewhere"})
    assert cfg.recipe == path.name and cfg.data == "somewhere"
    assert (cfg.student if student else cfg.generator) in name  # vangogh-fast uses fast, ...


def test_flags_override_the_recipe():
    cfg = recipes.load_config(training.TrainConfig, "vangogh-resnet", {"crop": 128, "epochs": None})
    assert cfg.crop == 128 and cfg.load_size == 143 and cfg.epochs == 200
    assert recipes.recipe_path(None).stem == recipes.DEFAULT_RECIPE


def test_config_validation():
    with pytest.raises(VidganError, match="do not fit the fast generator"):
        training.TrainConfig(generator_kwargs={"width": 3})
    with pytest.raises(VidganError, match="multiple of 256"):
        training.TrainConfig(generator="unet", crop=128)
    assert training.TrainConfig(epochs=1, decay_epochs=10).decay_epochs == 1


def test_lr_schedule_is_the_papers():
    cfg = training.TrainConfig(epochs=200, decay_epochs=100)
    factors = [training.lr_factor(cfg, e) for e in range(200)]
    assert factors[:100] == [1.0] * 100
    assert factors[100] == pytest.approx(1 - 1 / 101) and factors[-1] == pytest.approx(1 / 101)


# --- user errors through the CLI ------------------------------------------------------------


def _cli_errors(tmp_path, recipe, dataset) -> dict:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("crop = [")
    unknown_key = tmp_path / "unknown.toml"
    unknown_key.write_text("crop = 64\nlearning_rate = 1e-3\n")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('crop = "big"\n')
    busy = tmp_path / "busy"
    (busy / "checkpoints").mkdir(parents=True)
    (busy / "checkpoints" / "step-000000001.pt").write_bytes(b"")
    (tmp_path / "flat").mkdir()
    common = ["--data", dataset, "--out", tmp_path / "out"]
    cases = {
        "missing data": (["train", "--data", tmp_path / "nowhere"], "does not exist"),
        "no trainA/trainB": (["train", "--data", tmp_path / "flat"], "no trainA/trainB"),
        "unknown recipe": (["train", "nope", *common], "recipe 'nope' not found"),
        "invalid TOML": (["train", bad_toml, *common], "not valid TOML"),
        "unknown recipe key": (["train", unknown_key, *common], "unknown key(s): learning_rate"),
        "resume without checkpoints": (
            ["train", "--resume", "--out", tmp_path / "empty"],
            "no checkpoint",
        ),
        "checkpoints without resume": (
            ["train", recipe, "--data", dataset, "--out", busy],
            "--resume",
        ),
        "crop not a multiple": (["train", recipe, *common, "--crop", "34"], "multiple of 4"),
        "crop too small": (["train", recipe, *common, "--crop", "8"], "at least 32"),
        "bad checkpoint": (
            ["train", "--export-only", bad_toml],
            "not a vidgan training checkpoint",
        ),
        "negative lr": (["train", recipe, *common, "--lr", "-1"], "--lr must be a positive"),
        "negative workers": (["train", recipe, *common, "--workers", "-1"], "--workers must be"),
        "zero max steps": (["train", recipe, *common, "--max-steps", "0"], "--max-steps must be"),
        "out is a file": (
            ["train", recipe, "--data", dataset, "--out", bad_toml],
            "is a file; give a folder",
        ),
        "recipe value of the wrong type": (
            ["train", wrong_type, *common],
            "crop must be a whole number, not 'big'",
        ),
    }
    if not torch.cuda.is_available():
        cases["cuda without GPU"] = (["train", recipe, *common, "--device", "cuda"], "no CUDA GPU")
    return cases


def test_user_errors_are_one_line_and_exit_2(tmp_path, recipe, dataset, vidgan_cli):
    for case, (args, message) in _cli_errors(tmp_path, recipe, dataset).items():
        code, _, err = vidgan_cli(*args)
        assert code == 2, case
        assert err.startswith("error: ") and message in err, (case, err)
        assert "Traceback" not in err and err.count("\n") == 1, (case, err)
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


# --- damaged checkpoints and a full disk ------------------------------------------------------


def _break_newer_checkpoints(run: Path) -> list[Path]:
    """Three unusable checkpoints newer than the run's own: cut short, garbage, empty."""
    good = training.latest_checkpoint(run, training.CHECKPOINT_KEYS)
    raw = good.read_bytes()
    folder = run / "checkpoints"
    broken = [folder / f"step-00000000{n}.pt" for n in (7, 8, 9)]
    broken[0].write_bytes(raw[: len(raw) // 2])
    broken[1].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    broken[2].write_bytes(b"")
    return broken


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path, recipe, dataset):
    run = tmp_path / "run"
    training.train(tiny_config(recipe, dataset, run, max_steps=2))
    good = training.latest_checkpoint(run, training.CHECKPOINT_KEYS)
    broken = _break_newer_checkpoints(run)
    with pytest.warns(UserWarning) as caught:
        assert training.latest_checkpoint(run, training.CHECKPOINT_KEYS) == good
    assert [str(p) in str(w.message) for w in caught for p in broken].count(True) == 3
    proc = subprocess.run(
        [sys.executable, "-m", "vidgan", "train", "--resume", "--out", str(run), "--max-steps", "3"],
        check=False, capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warned) == 3 and all("trying the one before" in line for line in warned)
    assert [int(r["step"]) for r in loss_rows(run)] == [1, 2, 3]
    # the passed-over files would outrank the run's own checkpoints: gone
    assert [p.name for p in training.checkpoints(run)] == [good.name, "step-000000003.pt"]


def test_no_readable_checkpoint_is_one_error(tmp_path, recipe, dataset, vidgan_cli, capsys):
    run = tmp_path / "run"
    training.train(tiny_config(recipe, dataset, run, max_steps=1))
    _break_newer_checkpoints(run)
    (run / "checkpoints" / "step-000000001.pt").write_bytes(b"\x00" * 100)
    capsys.readouterr()
    with pytest.warns(UserWarning):
        code, _, err = vidgan_cli("train", "--resume", "--out", run)
    assert code == 2 and err.startswith("error: none of the 4 checkpoint(s)"), err
    assert err.count("\n") == 1


def test_full_disk_while_saving_a_checkpoint_leaves_no_partial_file(tmp_path, recipe, dataset):
    from conftest import cli_code, run_with_file_limit

    run = tmp_path / "run"
    proc = run_with_file_limit(cli_code("train", recipe, "--data", dataset, "--out", run,
                                        "--max-steps", "1"), 100_000)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"error: cannot write {run / 'checkpoints'}") and "File too large" in last
    assert list((run / "checkpoints").iterdir()) == []  # no 30 MB .partial filling the disk
    assert "Traceback" not in proc.stderr


# --- the losses and the pool reach what they should -----------------------------------------


def tiny_gan(pool_size: int = 4) -> training.CycleGAN:
    cfg = training.TrainConfig(generator="fast", generator_kwargs={"ngf": 4, "n_blocks": 1},
                               discriminator_kwargs={"ndf": 8}, crop=32, pool_size=pool_size,
                               lambda_identity=0.0)
    torch.manual_seed(0)
    return training.CycleGAN(cfg, torch.device("cpu"))


def batch(seed: int) -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_both_cycle_losses_train_the_generators():
    """With discriminators that see nothing (adversarial gradients are zero), G's and F's
    gradients after a step are exactly those of lambda_cycle * (cycle_x + cycle_y)."""
    import copy

    import torch.nn.functional as F

    gan = tiny_gan()
    for d in (gan.discs.D_Y, gan.discs.D_X):
        d.forward = lambda x, forward=d.forward: forward(x) * 0  # blind, but still in the graph
    G, F_ = copy.deepcopy(gan.gens.G), copy.deepcopy(gan.gens.F)
    x, y = batch(1), batch(2)
    gan.step(x, y)
    reference = gan.cfg.lambda_cycle * (F.l1_loss(F_(G(x)), x) + F.l1_loss(G(F_(y)), y))
    reference.backward()
    for trained, ref in ((gan.gens.G, G), (gan.gens.F, F_)):
        for (name, p), q in zip(trained.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_d_y_learns_from_the_pool_of_earlier_paintings():
    """D_Y's fake half comes from the pool: a stored earlier fake when the pool swaps one in."""
    gan = tiny_gan(pool_size=1)
    marker = torch.full((3, 32, 32), 0.5)
    gan.pool_y.images = [marker.clone()]
    gan.pool_y.rng.seed(1)  # its first draw is under 0.5: the stored fake is handed out
    seen = []
    forward = gan.discs.D_Y.forward
    gan.discs.D_Y.forward = lambda x: seen.append(x.detach().clone()) or forward(x)
    gan.step(batch(1), batch(2))
    _real, fake = seen[-1]  # the discriminator step: real paintings, then the pooled fakes
    torch.testing.assert_close(fake, marker)
    assert not torch.equal(gan.pool_y.images[0], marker)  # the new fake took its place


# --- configs saved by earlier versions ----------------------------------------------------


@pytest.mark.parametrize("name", ["vangogh-fast", "vangogh-fast-F"])
def test_the_bundled_version_1_model_files_still_load(name):
    """They hold a version-1 config: every field, flat, run paths included."""
    path = modelfile.WEIGHTS_DIR / f"{name}.safetensors"
    _generator, info = modelfile.load_model(path)
    assert "version" not in info.config  # written before configs had versions
    recipe = info.recipe
    assert recipe == info.config and (recipe.get("generator") or recipe.get("student")) == info.arch
    assert info.normalization == modelfile.TRAINING


def test_the_bundled_student_holds_a_version_2_config():
    _generator, info = modelfile.load_model(modelfile.WEIGHTS_DIR / "vangogh-realtime.safetensors")
    assert info.config["version"] == modelfile.CONFIG_VERSION
    assert info.recipe["student"] == info.arch and "run" not in info.config  # no run paths shipped
    assert info.normalization == modelfile.TRAINING


def test_a_checkpoint_from_before_versioned_configs_resumes(tmp_path, recipe, dataset, vidgan_cli):
    run = tmp_path / "run"
    training.train(tiny_config(recipe, dataset, run, max_steps=2))
    (ckpt,) = training.checkpoints(run)
    saved = torch.load(ckpt, weights_only=False)
    saved["config"] = {**saved["config"]["recipe"], **saved["config"]["run"]}  # version 1: flat
    torch.save(saved, ckpt)
    code, _, err = vidgan_cli("train", "--resume", "--out", run, "--max-steps", 3)
    assert code == 0, err
    assert [int(r["step"]) for r in loss_rows(run)] == [1, 2, 3]
    info = modelfile.read_info(run / "model.safetensors")
    assert info.config["version"] == modelfile.CONFIG_VERSION and "data" not in info.recipe


def test_warm_start_carries_weights_into_a_new_padding_and_refuses_another_layout(
        tmp_path, recipe, dataset):
    first = training.train(tiny_config(recipe, dataset, tmp_path / "a", max_steps=1))
    pair = [str(first), str(first.with_name("model-F.safetensors"))]
    reflect = tiny_config(recipe, dataset, tmp_path / "b", warm_start=pair,
                          generator_kwargs={"ngf": 4, "n_blocks": 1, "down_pad": "reflect"})
    gan = training.CycleGAN(reflect, torch.device("cpu"))
    gan.warm_start(*pair)
    loaded, _ = modelfile.load_model(first)
    for (name, a), b in zip(loaded.state_dict().items(), gan.gens.G.state_dict().values()):
        assert torch.equal(a, b), name
    wider = tiny_config(recipe, dataset, tmp_path / "c", warm_start=pair,
                        generator_kwargs={"ngf": 8, "n_blocks": 1})
    with pytest.raises(VidganError, match="holds a fast"):
        training.CycleGAN(wider, torch.device("cpu")).warm_start(*pair)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads children from /proc")
def test_data_workers_leave_stop_signals_to_the_run(tmp_path, recipe):
    # `timeout`, a service manager or a shell's job control signal the workers too: a worker
    # that died of it would crash the run at its next batch, before any checkpoint
    from conftest import cli_code

    run, data = tmp_path / "run", make_dataset(tmp_path / "data", photos=60)  # workers live long
    code = cli_code("train", recipe, "--data", data, "--out", run, "--epochs", 1000,
                    "--workers", 2, "--device", "cpu")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=ENV)

    def wait_for_rows(n: int) -> None:
        deadline = time.monotonic() + 120
        while not (run / "losses.csv").is_file() or len(loss_rows(run)) < n:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.1)

    wait_for_rows(2)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert children, "no data workers"
    for pid in children:
        os.kill(int(pid), signal.SIGTERM)
    rows = len(loss_rows(run))
    wait_for_rows(rows + 3)  # the run goes on, workers and all
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted at step "), err
    assert training.checkpoints(run)
