"""Distillation: a small student generator learns a teacher model file's photo -> painting output.

The teacher pairs every photo with its painting, so this is supervised training, far cheaper
and steadier than the GAN. Per step, on a batch of (photo, teacher output) crops:

    pixel L1 + gradient L1 (edges and strokes)    student(x) against teacher(x)
    temporal                                      student(warp(x)) against warp(student(x)),
                                                  a small random known warp, away from borders
    adversarial (lambda_adv > 0)                  a PatchGAN that tells the teacher's outputs
                                                  (or real paintings: adversary = "paintings")
                                                  from the student's: L1 alone averages strokes
                                                  away into a softer picture

Teacher outputs are computed once per photo and cached in the user's cache folder
(vidgan.core.cache.cache_dir), keyed by the teacher's content hash. Randomness is a function of
(seed, step), so a resumed run is exact. The teacher runs behind whatever the caller hands in
(the CLI: the fastest backend); by default plain PyTorch.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vidgan.core import modelfile, models
from vidgan.core.cache import cache_dir
from vidgan.core.device import resolve_device
from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import write_atomic
from vidgan.core.images import list_images, load_rgb
from vidgan.core.padding import run_padded
from vidgan.core.progress import Progress
from vidgan.train import data, recipes
from vidgan.train.checkpoints import (
    StopFlag,
    ignore_stop_signals,
    latest_checkpoint,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from vidgan.train.losses import adversarial_loss, check_discriminator, discriminator_loss
from vidgan.train.recipes import run_field
from vidgan.train.trainlog import PLAIN_EVERY, DistillLog


@dataclass
class DistillConfig:
    # the run's: its files, what it runs on, where it stops
    teacher: str | None = run_field()  # model file; None = the bundled photo -> painting generator
    data: str | None = run_field()  # CycleGAN layout: photos in trainB, held-out photos in valB
    photos: str | None = run_field()  # or a folder of photos
    out: str = run_field("runs/realtime")
    device: str = run_field("auto")
    workers: int = run_field(0)
    max_steps: int | None = run_field()  # stop early (the schedule still follows `steps`)
    # the recipe's (saved in the model file)
    recipe: str = ""
    student: str = "realtime"
    student_kwargs: dict = field(default_factory=dict)
    load_size: int = 256  # shorter side the teacher sees
    crop: int = 128
    batch_size: int = 8
    steps: int = 7000  # the cosine schedule's length
    lr: float = 2e-3
    lambda_l1: float = 1.0
    lambda_grad: float = 1.0
    lambda_temporal: float = 1.0
    lambda_adv: float = 0.0  # LSGAN: the adversary's images are real, student outputs fake
    adversary: str = "teacher"  # or "paintings": the data's trainA, cropped like the photos
    lambda_fm: float = 0.0  # L1 between the adversary's features of student and teacher outputs
    discriminator_kwargs: dict = field(default_factory=lambda: {"ndf": 32, "n_layers": 3})
    lr_d: float = 2e-4
    warp_shift: float = 6.0  # pixels, at most, of the known random warp
    warp_zoom: float = 0.04  # relative
    warp_rotate: float = 2.0  # degrees
    warp_margin: int = 8  # border pixels the temporal term ignores
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0

    def __post_init__(self):
        recipes.check_types(self)  # a recipe's `crop = "big"` is an error here, not a traceback
        if self.student not in models.GENERATORS:
            raise VidganError(
                f"unknown student architecture {self.student!r}; known: {', '.join(models.GENERATORS)}"
            )
        try:
            with torch.device("meta"):
                multiple = models.build(self.student, **self.student_kwargs).multiple
        except TypeError as exc:
            raise VidganError(f"student_kwargs {self.student_kwargs} do not fit {self.student}: {exc}") from None
        if self.crop % multiple or self.crop > self.load_size:
            raise VidganError(
                f"crop must be a multiple of {multiple} and at most load_size ({self.load_size})"
            )
        for name, low in AT_LEAST.items():
            value = getattr(self, name)
            if value is not None and not low <= value < math.inf:
                raise VidganError(f"{name} must be at least {low}, not {value}")
        for name in ("lr", "lr_d"):
            if not 0 < getattr(self, name) < math.inf:
                raise VidganError(f"{_flag(name)} must be a positive number, not {getattr(self, name)}")
        check_discriminator(self.discriminator_kwargs)
        if self.adversary not in ("teacher", "paintings"):
            raise VidganError(f"adversary must be 'teacher' or 'paintings', not {self.adversary!r}")
        if self.lambda_fm > 0 and (self.lambda_adv == 0 or self.adversary != "teacher"):
            raise VidganError("lambda_fm needs lambda_adv > 0 and adversary = \"teacher\": it matches "
                              "the adversary's features of the student's and the teacher's outputs")


def _flag(name: str) -> str:
    return "--lr" if name == "lr" else name


# The smallest value of each numeric field (NaN and infinity are out of every range).
AT_LEAST = {
    "load_size": 8, "crop": 8, "batch_size": 1, "steps": 1, "max_steps": 1, "lambda_l1": 0.0,
    "lambda_grad": 0.0, "lambda_temporal": 0.0, "lambda_adv": 0.0, "lambda_fm": 0.0,
    "warp_shift": 0.0, "warp_zoom": 0.0,
    "warp_rotate": 0.0, "warp_margin": 1, "log_every": 1, "sample_every": 1,
    "checkpoint_every": 1, "keep_checkpoints": 1, "workers": 0, "seed": 0,
}


# --- losses -------------------------------------------------------------------------------


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical pixel differences of two NCHW batches."""
    return F.l1_loss(_dx(a), _dx(b)) + F.l1_loss(_dy(a), _dy(b))


def _dx(t: torch.Tensor) -> torch.Tensor:
    return t[..., :, 1:] - t[..., :, :-1]


def _dy(t: torch.Tensor) -> torch.Tensor:
    return t[..., 1:, :] - t[..., :-1, :]


def random_warps(n: int, gen: torch.Generator, size: tuple[int, int], shift: float,
                 zoom: float, rotate: float) -> torch.Tensor:
    """n random affine warps (N, 2, 3) for F.affine_grid: shift in pixels, zoom, rotation."""
    u = torch.rand(n, 4, generator=gen) * 2 - 1
    h, w = size
    angle = u[:, 0] * math.radians(rotate)
    scale = 1 + u[:, 1] * zoom
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = u[:, 2] * shift * 2 / w, u[:, 3] * shift * 2 / h
    return torch.stack([torch.stack([cos, -sin * h / w, tx], 1),
                        torch.stack([sin * w / h, cos, ty], 1)], 1)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def temporal_loss(student: nn.Module, x: torch.Tensor, theta: torch.Tensor, margin: int,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |student(warp(x)) - warp(student(x))| where the warp has data, `margin` px from the
    borders: zero for a student that commutes with the warp, as a video's motion asks."""
    out = student(x) if out is None else out
    moved = student(warp(x, theta))
    inside = warp(torch.ones_like(x[:, :1]), theta) > 0.999
    inside[..., :margin, :] = inside[..., -margin:, :] = False
    inside[..., :, :margin] = inside[..., :, -margin:] = False
    inside = inside.expand_as(moved)
    diff = (moved - warp(out, theta)).abs()
    return diff[inside].mean() if inside.any() else diff.sum() * 0


# --- teacher outputs ----------------------------------------------------------------------


def load_teacher(path: str | Path | None) -> tuple[Path, modelfile.ModelInfo]:
    info = modelfile.read_info(modelfile.resolve(path))
    if info.direction != "photo->painting":
        raise VidganError(
            f"teacher {info.path} is a {info.direction} generator; give a photo -> painting "
            "model file (model.safetensors of a run, not model-F)"
        )
    return info.path, info


class TorchTeacher:
    """A teacher model file run by plain PyTorch: RGB uint8 (H, W, 3) -> (1, H, W, 3) uint8."""

    name = "torch"

    def __init__(self, path: Path, device: torch.device):
        self.generator, self.info = modelfile.load_model(path, device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        norm = self.info.normalization
        x = norm.to_model(torch.from_numpy(image).to(self.device)).permute(2, 0, 1)[None]
        return norm.to_pixels(run_padded(self.generator, x)).permute(0, 2, 3, 1)


class TeacherCache:
    """Teacher outputs, one PNG per photo (shorter side `load_size`), keyed by the teacher's and
    the photo's contents: a data set copied again (new paths, new times) keeps its outputs."""

    def __init__(self, teacher: Path, load_size: int):
        self.teacher, self.load_size = teacher, load_size
        self.folder = cache_dir() / "distill" / f"{modelfile.file_hash(teacher)}-{load_size}"
        self._names: dict[Path, str] = {}

    def path(self, photo: Path) -> Path:
        if photo not in self._names:
            self._names[photo] = hashlib.sha1(photo.read_bytes()).hexdigest()[:20] + ".png"
        return self.folder / self._names[photo]

    def fill(self, photos: list[Path], teacher, say) -> None:
        """Run `teacher` (RGB uint8 (H, W, 3) -> (1, H, W, 3) uint8 tensor, with a `name`) on
        every photo not cached yet, with progress (rate, ETA)."""
        missing = [p for p in photos if not self.path(p).exists()]
        if not missing:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        say(f"teacher outputs for {len(missing)} photos ({teacher.name}), cached in {self.folder}")
        with Progress("teacher", len(missing), unit="photos", say=say, every=PLAIN_EVERY) as progress:
            for i, photo in enumerate(missing, 1):
                image = np.array(resize_shorter(load_rgb(photo), self.load_size))
                _write_png(teacher(image)[0].cpu().numpy(), self.path(photo))
                progress.update(i)

    def load(self, photo: Path):
        with Image.open(self.path(photo)) as im:
            return im.convert("RGB")


def resize_shorter(im, side: int):
    scale = side / min(im.size)
    if scale == 1:
        return im
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)


def _write_png(rgb: np.ndarray, path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    write_atomic(path, buffer.getbuffer())


class PairDataset(torch.utils.data.Dataset):
    """Draw d of the run: photo d mod N of its epoch's permutation and its teacher output, both
    cropped and flipped alike; with `paintings`, also painting d mod M of its own permutation,
    cropped on its own. Indexing by the global draw number makes resume exact."""

    def __init__(self, photos: list[Path], cache: TeacherCache, cfg: DistillConfig,
                 paintings: list[Path] = ()):
        self.photos, self.cache, self.cfg, self.paintings = photos, cache, cfg, list(paintings)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, draw: int) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        photo = _drawn(self.photos, draw, cfg.seed)
        x = resize_shorter(load_rgb(photo), cfg.load_size)
        y = self.cache.load(photo)
        seed = f"{cfg.seed}-{draw}"
        x = data.augment(x, cfg.load_size, cfg.crop, random.Random(seed))
        y = data.augment(y, cfg.load_size, cfg.crop, random.Random(seed))
        if not self.paintings:
            return data.to_tensor(x), data.to_tensor(y)
        painting = load_rgb(_drawn(self.paintings, draw, cfg.seed + 1))
        p = data.augment(painting, cfg.load_size, cfg.crop, random.Random(f"painting-{seed}"))
        return data.to_tensor(x), data.to_tensor(y), data.to_tensor(p)


def _drawn(files: list[Path], draw: int, seed: int) -> Path:
    epoch, i = divmod(draw, len(files))
    return files[np.random.default_rng([seed, epoch]).permutation(len(files))[i]]


def _batches(dataset: PairDataset, cfg: DistillConfig, start_step: int, total: int):
    sampler = [range(s * cfg.batch_size, (s + 1) * cfg.batch_size) for s in range(start_step, total)]
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                                       worker_init_fn=ignore_stop_signals)


# --- the loop -----------------------------------------------------------------------------


class Distiller:
    """The student, its optimizer and the training step."""

    def __init__(self, cfg: DistillConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.student = models.build(cfg.student, **cfg.student_kwargs).to(device)
        self.opt = torch.optim.Adam(self.student.parameters(), lr=cfg.lr)
        self.disc = self.opt_d = None
        if cfg.lambda_adv > 0:
            self.disc = models.build("patchgan", **cfg.discriminator_kwargs).to(device)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))

    def set_lr(self, step: int) -> float:
        """The cosine schedule: the learning rate's factor at `step` (1 -> 0 over cfg.steps)."""
        factor = 0.5 * (1 + math.cos(math.pi * min(step, self.cfg.steps) / self.cfg.steps))
        for opt, lr in ((self.opt, self.cfg.lr), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr * factor
        return factor

    def step(self, x: torch.Tensor, target: torch.Tensor, step: int,
             real: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One student step, then the discriminator's on `real` (default: `target`) against
        the student's output."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        theta = random_warps(len(x), gen, x.shape[-2:], cfg.warp_shift, cfg.warp_zoom, cfg.warp_rotate)
        out = self.student(x)
        losses = {"l1": F.l1_loss(out, target), "grad": gradient_l1(out, target)}
        losses["temporal"] = temporal_loss(self.student, x, theta, cfg.warp_margin, out)
        loss = (cfg.lambda_l1 * losses["l1"] + cfg.lambda_grad * losses["grad"]
                + cfg.lambda_temporal * losses["temporal"])
        if self.disc is not None:
            losses.update(self._adversarial_losses(out, target))
            loss = loss + cfg.lambda_adv * losses["adv"] + cfg.lambda_fm * losses.get("fm", 0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.disc is not None:
            losses["d"] = self._discriminator_step(target if real is None else real, out.detach())
        return {k: v.detach() for k, v in losses.items()}

    def _adversarial_losses(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The adversarial loss and, with lambda_fm, feature matching (pix2pixHD): the mean L1
        between the adversary's features of the student's output and of the teacher's."""
        self.disc.requires_grad_(False)
        if self.cfg.lambda_fm == 0:
            return {"adv": adversarial_loss("lsgan", self.disc(out), True)}
        fake = self.disc.features(out)
        with torch.no_grad():
            real = self.disc.features(target)
        fm = sum(F.l1_loss(f, r) for f, r in zip(fake[:-1], real[:-1])) / (len(fake) - 1)
        return {"adv": adversarial_loss("lsgan", fake[-1], True), "fm": fm}

    def _discriminator_step(self, real: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        self.disc.requires_grad_(True)
        loss = discriminator_loss("lsgan", self.disc(torch.cat([real, student])), len(real))
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss


def distill(cfg: DistillConfig, resume: bool = False, teacher=None) -> Path:
    """Train the student into cfg.out; returns the student's model file. teacher: what runs the
    teacher model file on the photos, see TeacherCache.fill (None: TorchTeacher)."""
    out = Path(cfg.out)
    ckpt = latest_checkpoint(out, CHECKPOINT_KEYS)
    if resume and ckpt is None:
        raise VidganError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
    if not resume and ckpt is not None:
        raise VidganError(f"{out} already holds checkpoints; continue with --resume or choose another --out")
    teacher_path, _ = load_teacher(cfg.teacher)
    photos, val = _photos(cfg)
    paintings = _paintings(cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Distiller(cfg, device)
    state = {"step": 0, "seconds": 0.0}
    if ckpt is not None:
        state = _load_checkpoint(ckpt, model)
    total = min(cfg.steps, cfg.max_steps or cfg.steps)
    log = DistillLog(out, cfg, start_step=state["step"], total_steps=total)
    cache = TeacherCache(teacher_path, cfg.load_size)
    if not all(cache.path(p).exists() for p in photos + val):
        teacher = teacher or TorchTeacher(teacher_path, device)
    cache.fill(list(dict.fromkeys(photos + val)), teacher, log.say)
    log.begin(val, cache)
    dataset = PairDataset(photos, cache, cfg, paintings)
    stop = StopFlag()
    try:
        tick = time.perf_counter()
        for x, y, *paintings in _batches(dataset, cfg, state["step"], total):
            lr_factor = model.set_lr(state["step"])
            real = paintings[0].to(device) if paintings else None
            losses = model.step(x.to(device), y.to(device), state["step"], real)
            state["step"] += 1
            state["seconds"] += time.perf_counter() - tick
            tick = time.perf_counter()
            log.step(state["step"], losses, lr_factor, model.student)
            if state["step"] % cfg.checkpoint_every == 0 and state["step"] < total:
                save_checkpoint(out, model, cfg, state)
            if stop:
                break
        save_checkpoint(out, model, cfg, state)
        log.samples(state["step"], model.student)
        path = export_student(out, model.student, cfg, state, teacher_path, log.final_losses())
    finally:
        log.close()
        stop.restore()
    if stop:
        raise Interrupted(f"interrupted at step {state['step']}: checkpoint saved in "
                          f"{out / 'checkpoints'}; continue with --resume")
    log.say(f"done: {state['step']} steps; student model file {path}")
    return path


def _photos(cfg: DistillConfig) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos for the sample grid)."""
    if cfg.photos:
        photos = list_images(cfg.photos)
        return photos, photos[:4]
    if not cfg.data:
        raise VidganError("no photos: give --data DIR (a CycleGAN layout) or --photos DIR")
    _, photo_dir = data.find_domains(cfg.data)
    _, val_dir = data.find_val_domains(cfg.data)
    photos = list_images(photo_dir)
    return photos, (list_images(val_dir) if val_dir else photos)[:4]


def _paintings(cfg: DistillConfig) -> list[Path]:
    """The adversary's real paintings: the data's trainA (none unless adversary = "paintings")."""
    if cfg.lambda_adv == 0 or cfg.adversary != "paintings":
        return []
    if not cfg.data:
        raise VidganError("adversary = \"paintings\" needs --data DIR (a CycleGAN layout: "
                          "paintings in trainA)")
    painting_dir, _ = data.find_domains(cfg.data)
    return list_images(painting_dir)


CHECKPOINT_KEYS = {"config", "state", "rng", "student", "opt"}


def save_checkpoint(out: Path, model: Distiller, cfg: DistillConfig, state: dict) -> Path:
    payload = {"config": recipes.saved_config(cfg), "state": dict(state), "rng": rng_state(),
               "student": model.student.state_dict(), "opt": model.opt.state_dict()}
    if model.disc is not None:
        payload |= {"disc": model.disc.state_dict(), "opt_d": model.opt_d.state_dict()}
    return write_checkpoint(out, payload, state["step"], cfg.keep_checkpoints)


def _load_checkpoint(path: Path, model: Distiller) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.student.load_state_dict(ckpt["student"])
    model.opt.load_state_dict(ckpt["opt"])
    if model.disc is not None:
        model.disc.load_state_dict(ckpt["disc"])
        model.opt_d.load_state_dict(ckpt["opt_d"])
    set_rng_state(ckpt["rng"])
    return ckpt["state"]


def resumed_config(out: str | Path, overrides: dict) -> DistillConfig:
    ckpt = latest_checkpoint(out, CHECKPOINT_KEYS)
    if ckpt is None:
        raise VidganError(f"--resume: no checkpoint in {Path(out) / 'checkpoints'}; start without --resume")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["config"]
    # the run goes on in `out`, wherever it was when it saved (a copied or moved folder)
    return recipes.from_saved(DistillConfig, saved, {"out": str(out), **overrides})


def export_student(out: Path, student: nn.Module, cfg: DistillConfig, state: dict,
                   teacher: Path, losses: dict) -> Path:
    teacher_info = modelfile.read_info(teacher)
    training = {
        "steps": state["step"],
        "train_seconds": round(state["seconds"]),
        "final_losses": losses,
        "device": str(next(student.parameters()).device),
        "distilled_from": {"file": teacher.name, "hash": modelfile.file_hash(teacher),
                           "arch": teacher_info.arch},
    }
    return modelfile.save_model(out / "model.safetensors", student, cfg.student,
                                cfg.student_kwargs, config=recipes.saved_config(cfg, with_run=False),
                                training=training)
