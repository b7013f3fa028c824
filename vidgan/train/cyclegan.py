"""CycleGAN training (Zhu et al. 2017): G: photo -> painting, F: painting -> photo.

Per step: the generators minimise adversarial + cycle + identity losses against frozen
discriminators; then D_Y (paintings) and D_X (photos) learn real from fake, fakes drawn from
image history pools. X = photos (trainB), Y = paintings (trainA).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vidgan.core import modelfile, models
from vidgan.core.device import resolve_device
from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.images import list_images
from vidgan.train import data, recipes
from vidgan.train.checkpoints import (
    StopFlag,
    checkpoint_problem,
    checkpoints,
    first_line,
    ignore_stop_signals,
    latest_checkpoint,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from vidgan.train.losses import adversarial_loss, check_discriminator, discriminator_loss
from vidgan.train.recipes import run_field
from vidgan.train.trainlog import TrainLog, duration, final_losses


@dataclass
class TrainConfig:
    # the run's: where the data is and the run goes, what it runs on, where it starts and stops
    data: str | None = run_field()  # CycleGAN layout: trainA = paintings, trainB = photos
    data_a: str | None = run_field()  # or two explicit folders: paintings ...
    data_b: str | None = run_field()  # ... and photos
    out: str = run_field("runs/vangogh")
    device: str = run_field("auto")
    workers: int = run_field(0)
    warm_start: list[str] = run_field(default_factory=list)  # [G model file, F model file]
    max_steps: int | None = run_field()  # stop early (the schedule still follows `epochs`)
    # the recipe's: what is trained and how (saved in the model file)
    recipe: str = ""
    generator: str = "fast"
    generator_kwargs: dict = field(default_factory=dict)
    discriminator_kwargs: dict = field(default_factory=dict)
    gan_loss: str = "lsgan"  # "lsgan" (the paper) or "bce" (the original notebook)
    crop: int = 256
    load_size: int | None = None  # shorter side before cropping; default crop * 286 / 256
    batch_size: int = 1
    epochs: int = 200
    decay_epochs: int = 100  # the last epochs, over which the lr falls linearly to zero
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # relative to lambda_cycle
    lambda_tv: float = 0.0  # total variation of the translated images: damps pixel-level grain
    pool_size: int = 50
    checkpoint_every: int = 5  # epochs
    keep_checkpoints: int = 3
    log_every: int = 10  # steps between loss rows
    sample_size: int = 256  # side of the fixed validation images in the sample grids
    seed: int = 0

    def __post_init__(self):
        recipes.check_types(self)  # a recipe's `crop = "big"` is an error here, not a traceback
        if self.load_size is None:
            self.load_size = round(self.crop * 286 / 256)
        _check_ranges(self)
        # A recipe's decay can outlast a short run given --epochs: then the whole run decays.
        self.decay_epochs = min(self.decay_epochs, self.epochs)
        if self.gan_loss not in ("lsgan", "bce"):
            raise VidganError(f"gan_loss must be 'lsgan' or 'bce', not {self.gan_loss!r}")
        if self.generator not in models.GENERATORS:
            raise VidganError(
                f"unknown generator {self.generator!r}; known: {', '.join(models.GENERATORS)}"
            )
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise VidganError(f"--device must be cpu, cuda, cuda:N or auto, not {self.device!r}")
        if len(self.warm_start) not in (0, 2):
            raise VidganError("warm_start takes two model files: G (photo->painting), then F")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise VidganError(f"--out {self.out} is a file; give a folder for the run")
        multiple = _generator_on_meta(self.generator, self.generator_kwargs).multiple
        if self.crop % multiple:
            raise VidganError(
                f"--crop must be a multiple of {multiple} for the {self.generator} generator"
            )
        check_discriminator(self.discriminator_kwargs)


# The smallest value of each numeric field; below 32 px the PatchGAN's last layers have no
# pixels left to normalize.
AT_LEAST = {
    "crop": 32, "batch_size": 1, "epochs": 1, "decay_epochs": 0, "max_steps": 1,
    "pool_size": 0, "checkpoint_every": 1, "keep_checkpoints": 1, "log_every": 1,
    "sample_size": 32, "workers": 0, "seed": 0, "lambda_cycle": 0.0, "lambda_identity": 0.0,
    "lambda_tv": 0.0,
}
FLAGS = {"epochs", "decay_epochs", "max_steps", "crop", "batch_size", "lr", "checkpoint_every",
         "workers", "seed"}  # fields that `vidgan train` also takes as --flags


def _check_ranges(cfg: TrainConfig) -> None:
    """Every numeric field within its range (NaN and infinity are out of every range)."""
    for name, low in {**AT_LEAST, "load_size": cfg.crop}.items():
        value = getattr(cfg, name)
        if value is not None and not low <= value < math.inf:
            why = " (--crop)" if name == "load_size" else ""
            raise VidganError(f"{_label(name)} must be at least {low}{why}, not {value}")
    if not 0 < cfg.lr < math.inf:
        raise VidganError(f"--lr must be a positive number, not {cfg.lr}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            raise VidganError(f"{name} must be in [0, 1), not {getattr(cfg, name)}")
    if cfg.seed >= 2**32:
        raise VidganError(f"--seed must be below 2**32, not {cfg.seed}")


def _label(name: str) -> str:
    return "--" + name.replace("_", "-") if name in FLAGS else name


def _generator_on_meta(name: str, kwargs: dict) -> nn.Module:
    """Build a generator without memory, only to check its kwargs and read its multiple."""
    try:
        with torch.device("meta"):
            return models.build(name, **kwargs)
    except TypeError as exc:
        raise VidganError(
            f"generator_kwargs {kwargs} do not fit the {name} generator: {exc}"
        ) from None


class Generators(nn.Module):
    """G and F together, so that one (DDP) forward computes every image the G-step needs."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.G = models.build(cfg.generator, **cfg.generator_kwargs)
        self.F = models.build(cfg.generator, **cfg.generator_kwargs)
        self.identity = cfg.lambda_identity > 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_y, fake_x = self.G(x), self.F(y)
        out = {"fake_y": fake_y, "fake_x": fake_x, "rec_x": self.F(fake_y), "rec_y": self.G(fake_x)}
        if self.identity:
            out["idt_y"], out["idt_x"] = self.G(y), self.F(x)
        return out


class Discriminators(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.D_Y = models.build("patchgan", **cfg.discriminator_kwargs)  # paintings
        self.D_X = models.build("patchgan", **cfg.discriminator_kwargs)  # photos

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.D_Y(y), self.D_X(x)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, across and down (NCHW batch).

    Measured on [-1, 1] images: about 0.16 for the vangogh2photo photos and 0.22 for the
    paintings; a generator's grain shows up as more than the paintings have.
    """
    return (x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """The paper's schedule: constant, then linear decay to zero over the last decay_epochs."""
    constant = cfg.epochs - cfg.decay_epochs
    return 1.0 - max(0, epoch + 1 - constant) / (cfg.decay_epochs + 1)


class CycleGAN:
    """Models, optimizers and pools of one training run, and the training step."""

    def __init__(self, cfg: TrainConfig, device: torch.device, world: int = 1):
        self.cfg, self.device = cfg, device
        self.gens = Generators(cfg).to(device)
        self.discs = Discriminators(cfg).to(device)
        if device.type == "cuda":
            self.gens.to(memory_format=torch.channels_last)
            self.discs.to(memory_format=torch.channels_last)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.gens.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discs.parameters(), lr=cfg.lr, betas=betas)
        self.pool_x = data.ImagePool(cfg.pool_size, seed=cfg.seed + 1)
        self.pool_y = data.ImagePool(cfg.pool_size, seed=cfg.seed + 2)
        self.amp_dtype = _amp_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.gens_ddp, self.discs_ddp = self.gens, self.discs
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.gens_ddp = nn.parallel.DistributedDataParallel(self.gens, device_ids=ids)
            self.discs_ddp = nn.parallel.DistributedDataParallel(self.discs, device_ids=ids)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def set_lr(self, factor: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr * factor

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One G/F step and one D_X/D_Y step; returns the losses as (unsynchronized) tensors."""
        cfg, gan = self.cfg, self.cfg.gan_loss
        self.discs.requires_grad_(False)
        with self.autocast():
            out = self.gens_ddp(x, y)
            losses = {
                "adv_g": adversarial_loss(gan, self.discs.D_Y(out["fake_y"]), True),
                "adv_f": adversarial_loss(gan, self.discs.D_X(out["fake_x"]), True),
                "cycle_x": F.l1_loss(out["rec_x"], x),
                "cycle_y": F.l1_loss(out["rec_y"], y),
                "tv_y": total_variation(out["fake_y"]),
                "tv_x": total_variation(out["fake_x"]),
            }
            loss_g = (
                losses["adv_g"]
                + losses["adv_f"]
                + cfg.lambda_cycle * (losses["cycle_x"] + losses["cycle_y"])
                + cfg.lambda_tv * (losses["tv_y"] + losses["tv_x"])
            )
            if "idt_x" in out:
                losses["idt_x"], losses["idt_y"] = (
                    F.l1_loss(out["idt_x"], x),
                    F.l1_loss(out["idt_y"], y),
                )
                loss_g = loss_g + cfg.lambda_cycle * cfg.lambda_identity * (
                    losses["idt_x"] + losses["idt_y"]
                )
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)

        self.discs.requires_grad_(True)
        fake_y = self.pool_y.query(out["fake_y"].detach())
        fake_x = self.pool_x.query(out["fake_x"].detach())
        n = x.shape[0]
        with self.autocast():
            # Real and fake in one forward: InstanceNorm is per image, and DDP wants one forward.
            pred_y, pred_x = self.discs_ddp(torch.cat([y, fake_y]), torch.cat([x, fake_x]))
            losses["d_y"] = discriminator_loss(gan, pred_y, n)
            losses["d_x"] = discriminator_loss(gan, pred_x, n)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(losses["d_y"] + losses["d_x"]).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        return {k: v.detach() for k, v in losses.items()}

    def state_dict(self) -> dict:
        return {
            "G": self.gens.G.state_dict(),
            "F": self.gens.F.state_dict(),
            "D_Y": self.discs.D_Y.state_dict(),
            "D_X": self.discs.D_X.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "pool_x": self.pool_x.state_dict(),
            "pool_y": self.pool_y.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.gens.G.load_state_dict(state["G"])
        self.gens.F.load_state_dict(state["F"])
        self.discs.D_Y.load_state_dict(state["D_Y"])
        self.discs.D_X.load_state_dict(state["D_X"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if state["scaler"]:  # empty when saved by a run without fp16 (CPU or bf16)
            self.scaler.load_state_dict(state["scaler"])
        self.pool_x.load_state_dict(state["pool_x"], self.device)
        self.pool_y.load_state_dict(state["pool_y"], self.device)

    def warm_start(self, g_file: str, f_file: str) -> None:
        """Start G and F from model files (e.g. the bundled pair); discriminators stay fresh."""
        for net, path in ((self.gens.G, g_file), (self.gens.F, f_file)):
            loaded, info = modelfile.load_model(path)
            if info.arch == self.cfg.generator:
                # other kwargs with the same weights (a padding mode) warm-start too
                with contextlib.suppress(RuntimeError):
                    net.load_state_dict(loaded.state_dict())
                    continue
            raise VidganError(
                f"{path} holds a {info.arch} {info.kwargs} generator, the recipe a "
                f"{self.cfg.generator} {self.cfg.generator_kwargs} one"
            )


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --- the loop ---------------------------------------------------------------------------


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train from `cfg` into cfg.out (checkpoints, samples, logs); returns the model file path."""
    out = Path(cfg.out)
    if not resume and checkpoints(out):
        raise VidganError(
            f"{out} already holds checkpoints; continue with --resume or choose another --out"
        )
    ckpt = latest_checkpoint(out, CHECKPOINT_KEYS) if resume else None
    if resume and ckpt is None:
        raise VidganError(
            f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume"
        )
    rank, world, device = setup(cfg)
    photos, paintings, val = _datasets(cfg)
    dataset = data.UnpairedDataset(photos, paintings, cfg.crop, cfg.load_size, cfg.seed)
    batches = len(dataset) // world // cfg.batch_size
    if batches == 0:
        raise VidganError(
            f"{len(dataset)} images per domain are too few for --batch-size "
            f"{cfg.batch_size} on {world} process(es)"
        )
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    gan = CycleGAN(cfg, device, world)
    state = {"epoch": 0, "batch": 0, "step": 0, "seconds": 0.0}
    if ckpt is not None:
        try:
            state = _load_checkpoint(ckpt, gan)
        except (RuntimeError, KeyError, ValueError, EOFError) as exc:  # damaged past its index
            raise VidganError(f"checkpoint {ckpt} cannot be loaded ({first_line(exc)}); "
                              "remove it to resume from the one before") from None
    elif cfg.warm_start:
        gan.warm_start(*cfg.warm_start)
    if rank > 0:  # its own dropout masks (U-Net), not rank 0's
        torch.manual_seed(cfg.seed + 1000 * rank + state["step"])

    total = cfg.epochs * batches
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    log = TrainLog(out, cfg, val, enabled=rank == 0, start_step=state["step"], total_steps=total)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    stop = StopFlag()
    try:
        while state["step"] < total and not stop.check(world, device):
            epoch = state["epoch"]
            gan.set_lr(lr_factor(cfg, epoch))
            tick = time.perf_counter()
            for x, y in _loader(dataset, cfg, epoch, state["batch"], rank, world):
                x = x.to(device, non_blocking=True, memory_format=fmt)
                y = y.to(device, non_blocking=True, memory_format=fmt)
                losses = gan.step(x, y)
                state["step"] += 1
                state["batch"] += 1
                state["seconds"] += time.perf_counter() - tick  # data loading included
                tick = time.perf_counter()
                log.step(state, losses, lr_factor(cfg, epoch))
                if state["step"] >= total or stop.check(world, device):
                    break
            if state["batch"] == batches:  # the epoch is complete
                state["epoch"] += 1
                state["batch"] = 0
                log.epoch_end(epoch, gan.gens.G, gan.gens.F, device)
                last = state["step"] >= total  # saved below anyway
                if rank == 0 and state["epoch"] % cfg.checkpoint_every == 0 and not last:
                    save_checkpoint(out, gan, cfg, state)
        if rank == 0:
            save_checkpoint(out, gan, cfg, state)
            if state["batch"] > 0:  # stopped mid-epoch: samples of where it stands
                log.epoch_end(state["epoch"], gan.gens.G, gan.gens.F, device)
            export_generators(out, gan.gens, cfg, state, log.final_losses())
    finally:
        log.close()
        stop.restore()
        if world > 1:
            dist.destroy_process_group()
    model_path = out / "model.safetensors"
    if stop:
        raise Interrupted(
            f"interrupted at step {state['step']}: checkpoint saved in {out / 'checkpoints'}; "
            "continue with --resume"
        )
    log.say(f"done: {state['step']} steps in {duration(state['seconds'])}; model file {model_path}")
    return model_path


def setup(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); under torchrun, joins the process group (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = str(resolve_device(cfg.device))  # "cpu" or "cuda:N", or the one-line reason
    cuda = want.startswith("cuda")
    device = training_device(want, world, local, torch.cuda.current_device() if cuda else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotuned convolutions pay off
    # CPU threads are left to OMP_NUM_THREADS (torchrun sets 1 per process): on a busy machine,
    # more threads than free cores make every step many times slower, not faster.
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def training_device(want: str, world: int, local: int, current: int) -> torch.device:
    """The device of this process ("cpu", "cuda" or "cuda:N" wanted), always indexed on CUDA:
    torch.cuda.set_device refuses a bare "cuda". Under torchrun each process takes the GPU of
    its LOCAL_RANK; a single process takes the index asked for, else the current device."""
    if not want.startswith("cuda"):
        return torch.device(want)
    if world > 1:
        return torch.device("cuda", local)
    index = torch.device(want).index
    return torch.device("cuda", current if index is None else index)


def _datasets(cfg: TrainConfig) -> tuple[list[Path], list[Path], tuple[list[Path], list[Path]]]:
    """(photos, paintings, (val photos, val paintings)) from cfg.data or cfg.data_a/data_b."""
    if cfg.data_a or cfg.data_b:
        if not (cfg.data_a and cfg.data_b):
            raise VidganError("give both --data-a (paintings) and --data-b (photos)")
        paintings_dir, photos_dir = Path(cfg.data_a), Path(cfg.data_b)
        val_a = val_b = None
    elif cfg.data:
        paintings_dir, photos_dir = data.find_domains(cfg.data)
        val_a, val_b = data.find_val_domains(cfg.data)
    else:
        raise VidganError("no training data: give --data DIR (trainA = paintings, trainB = photos)")
    photos, paintings = list_images(photos_dir), list_images(paintings_dir)
    val_photos = list_images(val_b)[:4] if val_b else photos[:4]
    val_paintings = list_images(val_a)[:4] if val_a else paintings[:4]
    return photos, paintings, (val_photos, val_paintings)


def _loader(dataset, cfg: TrainConfig, epoch: int, skip: int, rank: int, world: int):
    """This rank's batches of `epoch`, after the first `skip` (a resumed epoch)."""
    dataset.set_epoch(epoch)
    sampler = torch.utils.data.DistributedSampler(
        dataset, world, rank, shuffle=False, drop_last=True
    )
    indices = list(sampler)[skip * cfg.batch_size :]
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=indices,
        drop_last=True,
        num_workers=cfg.workers,
        worker_init_fn=ignore_stop_signals,
        pin_memory=torch.cuda.is_available(),
        # Its own generator: a DataLoader draws a worker seed on every epoch, which would shift
        # the global RNG (dropout) differently in a resumed run. Augmentation has its own RNG.
        generator=torch.Generator().manual_seed(cfg.seed + epoch),
    )


# --- checkpoints and model files ----------------------------------------------------------


CHECKPOINT_KEYS = {"config", "state", "rng", "G", "F", "D_Y", "D_X", "opt_g", "opt_d"}


def resumed_config(out: str | Path, overrides: dict) -> TrainConfig:
    """The config stored in the newest readable checkpoint of `out`, updated by flags given now."""
    ckpt = latest_checkpoint(out, CHECKPOINT_KEYS)
    if ckpt is None:
        raise VidganError(
            f"--resume: no checkpoint in {Path(out) / 'checkpoints'}; start without --resume"
        )
    saved = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["config"]
    # the run goes on in `out`, wherever it was when it saved (a copied or moved folder)
    return recipes.from_saved(TrainConfig, saved, {"out": str(out), **overrides})


def save_checkpoint(out: Path, gan: CycleGAN, cfg: TrainConfig, state: dict) -> Path:
    """Everything needed to resume exactly (see write_checkpoint)."""
    payload = {"config": recipes.saved_config(cfg), "state": dict(state), "rng": rng_state(),
               **gan.state_dict()}
    return write_checkpoint(out, payload, state["step"], cfg.keep_checkpoints)


def _load_checkpoint(path: Path, gan: CycleGAN) -> dict:
    # Read onto the CPU whatever the training device: the RNG states must stay CPU ByteTensors
    # (map_location=cuda would move the list of CUDA generator states too, and
    # torch.cuda.set_rng_state_all refuses those), and load_state_dict copies the weights, the
    # optimizer moments and the pools onto the models' device anyway.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    gan.load_state_dict(ckpt)
    set_rng_state(ckpt["rng"])
    return ckpt["state"]


def export_generators(
    out: Path, gens: Generators, cfg: TrainConfig, state: dict, losses: dict
) -> Path:
    """G as out/model.safetensors (photo -> painting) and F as out/model-F.safetensors."""
    training = {
        "epochs": state["epoch"],
        "steps": state["step"],
        "train_seconds": round(state["seconds"]),
        "final_losses": losses,
        "device": str(next(gens.parameters()).device),
    }
    kwargs = {"config": recipes.saved_config(cfg, with_run=False), "training": training}
    save_model = modelfile.save_model
    save_model(
        out / "model-F.safetensors",
        gens.F,
        cfg.generator,
        cfg.generator_kwargs,
        direction="painting->photo",
        **kwargs,
    )
    return save_model(
        out / "model.safetensors", gens.G, cfg.generator, cfg.generator_kwargs, **kwargs
    )


def export_checkpoint(ckpt: str | Path, out: str | Path | None = None) -> Path:
    """`vidgan train --export-only CKPT`: a checkpoint's model files, by default in its run."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise VidganError(f"checkpoint {ckpt} does not exist")
    problem = checkpoint_problem(ckpt, CHECKPOINT_KEYS)
    if problem is not None:
        raise VidganError(f"{ckpt} is not a vidgan training checkpoint ({problem})")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = recipes.from_saved(TrainConfig, saved["config"])
    gens = Generators(cfg)
    gens.G.load_state_dict(saved["G"])
    gens.F.load_state_dict(saved["F"])
    run = ckpt.parent.parent
    losses = final_losses(run / "losses.csv", up_to_step=saved["state"]["step"])
    return export_generators(Path(out) if out else run, gens, cfg, saved["state"], losses)
