"""What a training run shows and writes besides checkpoints.

run/losses.csv       a row of losses every `log_every` steps
run/losses.png       the loss curves, redrawn each epoch
run/samples/*.png    fixed held-out photos -> paintings -> photos, and paintings -> photos
run/tb/              TensorBoard events, when tensorboard is installed
plus a progress bar with steps/s and ETA.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vidgan import data, frames

COLUMNS = ("epoch", "step", "lr_factor", "adv_g", "adv_f", "cycle_x", "cycle_y", "idt_x", "idt_y", "d_y", "d_x")


class TrainLog:
    def __init__(self, out: Path, cfg, val: tuple[list[Path], list[Path]], enabled: bool,
                 start_step: int, total_steps: int):
        self.out, self.cfg, self.enabled = out, cfg, enabled
        self.console = Console(stderr=True)
        self.rows: list[dict] = []
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.val_photos = _load_batch(val[0])
        self.val_paintings = _load_batch(val[1])
        self.csv_path = out / "losses.csv"
        self.rows = _read_rows(self.csv_path, up_to_step=start_step)
        self._rewrite_csv()
        self.tb = _tensorboard(out / "tb")
        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} it/s"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            console=self.console,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, rate=0.0, losses="")
        self.progress.start()
        self.seconds_at_start = None

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    def step(self, state: dict, losses: dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        if self.seconds_at_start is None:
            self.seconds_at_start, self.step_at_start = state["seconds"], state["step"] - 1
        rate = (state["step"] - self.step_at_start) / max(state["seconds"] - self.seconds_at_start, 1e-9)
        if state["step"] % self.cfg.log_every == 0:
            from vidgan.training import lr_factor

            row = {"epoch": state["epoch"], "step": state["step"], "lr_factor": lr_factor(self.cfg, state["epoch"])}
            row.update({k: round(v.item(), 5) for k, v in losses.items()})
            self.rows.append(row)
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, COLUMNS, extrasaction="ignore").writerow(row)
            if self.tb:
                for k, v in row.items():
                    if k not in ("epoch", "step"):
                        self.tb.add_scalar(f"loss/{k}", v, state["step"])
            text = f"cyc {row['cycle_x']:.3f}/{row['cycle_y']:.3f}  D {row['d_y']:.3f}/{row['d_x']:.3f}"
            self.progress.update(self.task, losses=text)
        self.progress.update(self.task, completed=state["step"], rate=rate)

    def epoch_end(self, epoch: int, G: torch.nn.Module, F: torch.nn.Module, device: torch.device) -> None:
        if not self.enabled:
            return
        grid = sample_grid(G, F, self.val_photos.to(device), self.val_paintings.to(device))
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        save_image(grid, folder / f"epoch-{epoch + 1:04d}.png")
        save_image(grid, folder / "latest.png")
        plot_losses(self.rows, self.out / "losses.png")

    def final_losses(self) -> dict:
        """Mean of each loss over the last 50 logged rows."""
        tail = self.rows[-50:]
        return {k: round(sum(float(r[k]) for r in tail) / len(tail), 4) for k in COLUMNS[3:] if tail and k in tail[0]}

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
            if self.tb:
                self.tb.close()

    def _rewrite_csv(self) -> None:
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)


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


def _load_batch(paths: list[Path], size: int = 256) -> torch.Tensor:
    """Images center-cropped to size x size as an NCHW batch in [-1, 1]."""
    from PIL import ImageOps

    images = [ImageOps.fit(data.load_rgb(p), (size, size)) for p in paths]
    return torch.stack([data.to_tensor(im) for im in images])


@torch.no_grad()
def sample_grid(G, F, photos: torch.Tensor, paintings: torch.Tensor) -> torch.Tensor:
    """Rows: photo | G(photo) | F(G(photo)), then painting | F(painting) | G(F(painting))."""
    was_training = G.training
    G.eval(), F.eval()
    rows = []
    for x, there, back in ((photos, G, F), (paintings, F, G)):
        x = x.to(next(G.parameters()).dtype)
        padded, size = frames.pad_to_multiple(x, G.multiple)
        fake = there(padded)
        rec = back(fake)
        rows += [torch.cat([x[i], frames.crop(fake, size)[i], frames.crop(rec, size)[i]], dim=2) for i in range(len(x))]
    G.train(was_training), F.train(was_training)
    return torch.cat(rows, dim=1)


def save_image(chw: torch.Tensor, path: Path) -> None:
    """A CHW image in [-1, 1] as PNG, written atomically."""
    from PIL import Image

    arr = frames.denormalize(chw.unsqueeze(0).float())[0].cpu().numpy()
    tmp = path.with_name(path.stem + ".partial.png")
    Image.fromarray(arr).save(tmp)
    tmp.replace(path)


def plot_losses(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    groups = (("adversarial (G, F)", ("adv_g", "adv_f")), ("cycle and identity L1", ("cycle_x", "cycle_y", "idt_x", "idt_y")),
              ("discriminators", ("d_y", "d_x")))
    for ax, (title, keys) in zip(axes, groups):
        for k in keys:
            if k in rows[0] and rows[0][k] not in ("", None):
                ax.plot(steps, _smooth([float(r[k]) for r in rows]), label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".partial.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)


def _smooth(values: list[float], window: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out
