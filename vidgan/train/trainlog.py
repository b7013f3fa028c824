"""What a training run shows and writes besides checkpoints.

run/losses.csv       a row of losses every `log_every` steps
run/losses.png       the loss curves, redrawn each epoch
run/samples/*.png    fixed held-out photos -> paintings -> photos, and paintings -> photos
run/tb/              TensorBoard events, when tensorboard is installed
plus progress with steps/s and ETA: a live bar on a terminal, else a plain line every 30 s.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from PIL import Image, ImageOps
from rich.console import Console

from vidgan.core.files import atomic_path, write_atomic
from vidgan.core.images import load_rgb
from vidgan.core.normalization import TRAINING
from vidgan.core.padding import run_padded
from vidgan.core.progress import Progress, duration  # noqa: F401 - duration: the run's summary
from vidgan.train import data

LOSS_NAMES = ("adv_g", "adv_f", "cycle_x", "cycle_y", "idt_x", "idt_y", "d_y", "d_x", "tv_y", "tv_x")
COLUMNS = ("epoch", "step", "lr_factor", *LOSS_NAMES)
PLAIN_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


class TrainLog:
    """Progress, loss rows, samples and plots of one run; does nothing on DDP ranks other than 0."""

    def __init__(
        self,
        out: Path,
        cfg,
        val: tuple[list[Path], list[Path]],
        enabled: bool,
        start_step: int,
        total_steps: int,
    ):
        self.out, self.cfg, self.enabled = out, cfg, enabled
        self.console = Console(stderr=True)
        self.rows: list[dict] = []
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.val_photos = _load_batch(val[0], cfg.sample_size)
        self.val_paintings = _load_batch(val[1], cfg.sample_size)
        self.csv_path = out / "losses.csv"
        self.rows = _read_rows(self.csv_path, up_to_step=start_step)
        _write_rows(self.csv_path, COLUMNS, self.rows)
        self.tb = _tensorboard(out / "tb")
        self.total = total_steps
        self.progress = Progress(
            "train", total_steps, "steps", say=self.say, every=PLAIN_EVERY, start=start_step,
            first_line=f"training {cfg.generator} from step {start_step} to {total_steps}",
        )

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)

    def step(self, state: dict, losses: dict[str, torch.Tensor], lr_factor: float) -> None:
        """After each step: a loss row every log_every steps, and the progress display."""
        if not self.enabled:
            return
        if state["step"] % self.cfg.log_every == 0:
            self._log_row(state, losses, lr_factor)
        self.progress.update(state["step"], brief=self._loss_text(brief=True),
                             full=self._loss_text(), where=f"epoch {state['epoch'] + 1}")

    def _log_row(self, state: dict, losses: dict[str, torch.Tensor], lr_factor: float) -> None:
        row = {"epoch": state["epoch"], "step": state["step"], "lr_factor": lr_factor}
        row.update({k: round(v.item(), 5) for k, v in losses.items()})
        self.rows.append(row)
        _append_row(self.csv_path, COLUMNS, row)
        if self.tb:
            for k, v in row.items():
                if k not in ("epoch", "step"):
                    self.tb.add_scalar(k if k == "lr_factor" else f"loss/{k}", v, state["step"])

    def _loss_text(self, brief: bool = False) -> str:
        """The latest logged losses: cycle and D_Y/D_X; in full, also adversarial and identity."""
        if not self.rows:
            return ""
        r = self.rows[-1]
        cycle, d = f"cyc {_f(r['cycle_x'])}/{_f(r['cycle_y'])}", f"D {_f(r['d_y'])}/{_f(r['d_x'])}"
        if brief:  # fits beside the bar in 80 columns
            return f"{cycle} {d}"
        text = f"adv {_f(r['adv_g'])}/{_f(r['adv_f'])}  {cycle}"
        if r.get("idt_x") not in (None, ""):
            text += f"  idt {_f(r['idt_x'])}/{_f(r['idt_y'])}"
        return f"{text}  {d}"

    def epoch_end(
        self, epoch: int, G: torch.nn.Module, F: torch.nn.Module, device: torch.device
    ) -> None:
        if not self.enabled:
            return
        grid = sample_grid(G, F, self.val_photos.to(device), self.val_paintings.to(device))
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        save_image(grid, folder / f"epoch-{epoch + 1:04d}.png")
        save_image(grid, folder / "latest.png")
        plot_losses(self.rows, self.out / "losses.png")

    def final_losses(self) -> dict:
        return _mean_losses(self.rows)

    def close(self) -> None:
        if self.enabled:
            self.progress.close()
            if self.tb:
                self.tb.close()


def final_losses(csv_path: Path, up_to_step: int) -> dict:
    """Mean of each loss over the last 50 rows of a run's losses.csv ({} when it is absent)."""
    return _mean_losses(_read_rows(csv_path, up_to_step))


def _write_rows(path: Path, columns, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _append_row(path: Path, columns, row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, columns, extrasaction="ignore").writerow(row)


def _mean_losses(rows: list[dict], names=LOSS_NAMES) -> dict:
    tail = rows[-50:]
    means = {}
    for k in names:
        values = [float(r[k]) for r in tail if r.get(k) not in (None, "")]
        if values:
            means[k] = round(sum(values) / len(values), 4)
    return means


def _f(value) -> str:
    return f"{float(value):.3f}"


def _read_rows(path: Path, up_to_step: int) -> list[dict]:
    """Rows already logged, dropping any written after the checkpoint we resume from."""
    if not path.exists():
        return []
    with path.open() as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= up_to_step]


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def _load_batch(paths: list[Path], size: int) -> torch.Tensor:
    """Images center-cropped to size x size as an NCHW batch in [-1, 1]."""
    return _fit_batch([load_rgb(p) for p in paths], size)


def _fit_batch(images: list, size: int) -> torch.Tensor:
    return torch.stack([data.to_tensor(ImageOps.fit(im, (size, size))) for im in images])


@torch.no_grad()
def sample_grid(G, F, photos: torch.Tensor, paintings: torch.Tensor) -> torch.Tensor:
    """Rows: photo | G(photo) | F(G(photo)), then painting | F(painting) | G(F(painting))."""
    was_training = G.training
    G.eval(), F.eval()
    rows = []
    for x, there, back in ((photos, G, F), (paintings, F, G)):
        x = x.to(next(G.parameters()).dtype)
        fake = run_padded(there, x)
        rec = run_padded(back, fake)
        rows += [torch.cat([x[i], fake[i], rec[i]], dim=2) for i in range(len(x))]
    G.train(was_training), F.train(was_training)
    return torch.cat(rows, dim=1)


def save_image(chw: torch.Tensor, path: Path) -> None:
    """A CHW image in [-1, 1] as PNG, written atomically."""
    arr = TRAINING.to_pixels(chw.detach().cpu()).permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


CYCLEGAN_PANELS = (
    ("adversarial (G, F)", ("adv_g", "adv_f")),
    ("cycle, identity L1 and total variation",
     ("cycle_x", "cycle_y", "idt_x", "idt_y", "tv_y", "tv_x")),
    ("discriminators", ("d_y", "d_x")),
)


def plot_losses(rows: list[dict], path: Path, marks: dict[int, str] | None = None,
                panels=CYCLEGAN_PANELS) -> None:
    """Smoothed loss curves, a panel per (title, names); `marks` labels a line at given steps."""
    if not rows:
        return
    import matplotlib  # a quarter second, for the plots only

    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for k in keys:
            logged = [(s, float(r[k])) for s, r in zip(steps, rows) if r.get(k) not in ("", None)]
            if logged:  # runs from before a loss existed have no column for it
                xs, ys = zip(*logged)
                ax.plot(xs, _smooth(list(ys)), label=k)
        for step, label in (marks or {}).items():
            ax.axvline(step, color="gray", linestyle="--", linewidth=1)
            ax.annotate(label, (step, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", color="gray")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.12, top=0.92, wspace=0.15)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    write_atomic(path, buffer.getbuffer())


def _smooth(values: list[float], window: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


DISTILL_LOSSES = ("l1", "grad", "temporal", "adv", "d", "fm")
DISTILL_PANELS = (("student vs teacher: pixel and gradient L1", ("l1", "grad")),
                  ("temporal: student(warp(x)) vs warp(student(x))", ("temporal",)),
                  ("adversarial (LSGAN) and feature matching", ("adv", "d", "fm")))


class DistillLog:
    """A distillation run's progress, losses.csv, losses.png and samples/ (photo | teacher |
    student on fixed held-out photos)."""

    COLUMNS = ("step", "lr_factor", *DISTILL_LOSSES)

    def __init__(self, out: Path, cfg, start_step: int, total_steps: int):
        self.out, self.cfg = out, cfg
        self.console = Console(stderr=True)
        out.mkdir(parents=True, exist_ok=True)
        self.csv_path = out / "losses.csv"
        self.rows = _read_rows(self.csv_path, up_to_step=start_step)
        _write_rows(self.csv_path, self.COLUMNS, self.rows)
        self.start, self.total = start_step, total_steps
        self.progress = self.photos = self.teacher = None  # set by begin()

    def say(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)

    def begin(self, photos: list[Path], cache) -> None:
        """Start the progress display, with fixed held-out photos and their teacher outputs for
        the sample grids (after the teacher's own progress, once its outputs are cached)."""
        size = self.cfg.load_size
        self.photos = _load_batch(photos, size)
        self.teacher = _fit_batch([cache.load(p) for p in photos], size)
        self.progress = Progress(
            "distill", self.total, "steps", say=self.say, every=PLAIN_EVERY, start=self.start,
            first_line=f"distilling a {self.cfg.student} student from step {self.start} to {self.total}",
        )

    def step(self, step: int, losses: dict[str, torch.Tensor], lr_factor: float, student) -> None:
        if step % self.cfg.log_every == 0:
            row = {"step": step, "lr_factor": round(lr_factor, 5)}
            row.update({k: round(v.item(), 5) for k, v in losses.items()})
            self.rows.append(row)
            _append_row(self.csv_path, self.COLUMNS, row)
        if step % self.cfg.sample_every == 0:
            self.samples(step, student)
        text = ""
        if self.rows:
            r = self.rows[-1]
            text = f"L1 {_f(r['l1'])} grad {_f(r['grad'])} temporal {_f(r['temporal'])}"
            if r.get("adv") not in (None, ""):
                text += f" adv {_f(r['adv'])} D {_f(r['d'])}"
            if r.get("fm") not in (None, ""):
                text += f" fm {_f(r['fm'])}"
        self.progress.update(step, brief=text)

    def samples(self, step: int, student) -> None:
        """samples/step-NNNNNNNNN.png and latest.png; redraws losses.png."""
        was_training = student.training
        student.eval()
        with torch.no_grad():
            device = next(student.parameters()).device
            out = run_padded(student, self.photos.to(device)).cpu()
        student.train(was_training)
        grid = torch.cat([torch.cat([p, t, s], dim=2)
                          for p, t, s in zip(self.photos, self.teacher, out)], dim=1)
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        save_image(grid, folder / f"step-{step:09d}.png")
        save_image(grid, folder / "latest.png")
        adversarial = self.cfg.lambda_adv > 0
        plot_losses(self.rows, self.out / "losses.png",
                    panels=DISTILL_PANELS if adversarial else DISTILL_PANELS[:2])

    def final_losses(self) -> dict:
        return _mean_losses(self.rows, DISTILL_LOSSES)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
