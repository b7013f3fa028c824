"""`vidgan eval --model M --data DIR`: a model's held-out cycle and identity losses and a
before/after grid."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageOps

from vidgan.core import modelfile
from vidgan.core.device import resolve_device
from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import atomic_path, write_atomic
from vidgan.core.images import list_images, load_rgb
from vidgan.core.padding import run_padded
from vidgan.core.progress import Progress
from vidgan.train import data as datasets

EVAL_SIZE = 256  # px: images are center-cropped to squares of this side, like training samples
EVAL_BATCH = 8


def evaluate_model(model: str | Path | None, photos: list[Path], paintings: list[Path], *,
                   inverse: str | Path | None = None, out: str | Path = "runs/eval",
                   grid_photos: int = 8, device: str | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> dict:
    """Cycle and identity L1 of G (photo -> painting) and F (painting -> photo) on held-out images.

    Each L1 is the mean absolute difference in the models' [-1, 1] units (so 0..2), per image,
    then averaged over images: on photos x, cycle_x |F(G(x)) - x|, idt_x |F(x) - x| and change_x
    |G(x) - x| (how far G moves a photo); on paintings y, cycle_y |G(F(y)) - y|, idt_y |G(y) - y|
    and change_y |F(y) - y|. Without F only G's metrics (change_x, idt_y) exist.
    Images are center-cropped to EVAL_SIZE squares. model: G's model file (None: the bundled
    one); inverse: F's (None: `<stem>-F.safetensors` beside G, if there).
    progress: called as progress(images_done, images_total).
    Writes out/grid.png (photo | painting pairs of the first `grid_photos` photos) and
    out/eval.json; returns the report that eval.json holds.
    """
    if not photos:
        raise VidganError("no photos to evaluate on")
    g_path = modelfile.resolve(model)
    f_path = inverse_path(g_path, inverse)
    dev = resolve_device(device)
    G = modelfile.load_model(g_path, dev)[0]
    F = modelfile.load_model(f_path, dev)[0] if f_path else None
    counter = _Counter(len(photos) + len(paintings), progress)
    start = time.perf_counter()
    metrics, shown = _domain_losses(photos, G, F, "x", dev, counter, keep=grid_photos)
    metrics |= _domain_losses(paintings, F, G, "y", dev, counter, keep=0)[0]
    out = Path(out)
    grid = _save_pairs(shown, out / "grid.png")
    report = {
        "model": str(g_path), "model_hash": modelfile.file_hash(g_path),
        "inverse": str(f_path) if f_path else None, "photos_folder": str(photos[0].parent),
        "photos": len(photos), "paintings": len(paintings), "size": EVAL_SIZE, "device": str(dev),
        "seconds": round(time.perf_counter() - start, 1),
        "units": "mean absolute difference in [-1, 1] pixel units (0..2), per image, averaged",
        "metrics": metrics,
        "grid": str(grid) if grid else None, "json": str(out / "eval.json"),
    }
    if F is None:
        report["note"] = (f"no inverse model: give --inverse or put {_inverse_name(g_path)} beside "
                          "the model for cycle losses and F's identity loss")
    _write_json(report, out / "eval.json")
    return report


def held_out_images(data: str | Path, limit: int | None = None) -> tuple[list[Path], list[Path]]:
    """(photos, paintings): DIR/valB and DIR/valA, else testB/testA, else DIR's images as photos."""
    folder = Path(data)
    if not folder.is_dir():
        raise VidganError(f"data folder {folder} does not exist")
    paintings_dir, photos_dir = datasets.find_val_domains(folder)
    if paintings_dir is None and photos_dir is None:
        photos_dir = folder
    if photos_dir is None:
        raise VidganError(f"{folder} has held-out paintings but no photos (valB or testB)")
    photos = list_images(photos_dir)[:limit]
    paintings = list_images(paintings_dir)[:limit] if paintings_dir else []
    return photos, paintings


def inverse_path(model: Path, inverse: str | Path | None = None) -> Path | None:
    """F's model file: `inverse` if given, else `<stem>-F.safetensors` beside G if it exists."""

    if inverse is None:
        beside = model.with_name(_inverse_name(model))
        if not beside.is_file():
            return None
        inverse = beside
    path = modelfile.resolve(inverse)
    direction = modelfile.read_info(path).direction
    if direction != "painting->photo":
        raise VidganError(f"{path} maps {direction}, not painting->photo: give F's model file "
                          "(model-F.safetensors of the training run) as --inverse")
    return path


def _inverse_name(model: Path) -> str:
    return f"{model.stem}-F{model.suffix}"


class _Counter:
    """Counts images done and reports them to an optional progress(done, total) callback."""

    def __init__(self, total: int, progress: Callable[[int, int | None], None] | None):
        self.done, self.total, self.progress = 0, total, progress

    def add(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def _domain_losses(paths: list[Path], there, back, domain: str, device, counter: _Counter,
                   keep: int) -> tuple[dict, list]:
    """Mean L1s of one domain: change |there(a) - a|, cycle |back(there(a)) - a|, idt |back(a) - a|.

    Either model may be None (its metrics are left out). Also returns (a, there(a)) CHW pairs
    of the first `keep` images, on the CPU.
    """
    sums: dict[str, float] = {}
    shown = []
    for i in range(0, len(paths), EVAL_BATCH):
        a = _load_square(paths[i:i + EVAL_BATCH]).to(device)
        with torch.inference_mode():
            moved = run_padded(there, a) if there is not None else None
            found = {"change": moved, "idt": run_padded(back, a) if back is not None else None,
                     "cycle": run_padded(back, moved) if back is not None and moved is not None else None}
        for name, b in found.items():
            if b is not None:
                key = f"{name}_{domain}"
                sums[key] = sums.get(key, 0.0) + (b - a).abs().flatten(1).mean(1).sum().item()
        if moved is not None:
            shown += [(a[j].cpu(), moved[j].cpu()) for j in range(min(len(a), keep - len(shown)))]
        counter.add(len(a))
    return {k: round(v / len(paths), 5) for k, v in sorted(sums.items())}, shown


def _load_square(paths: list[Path], size: int = EVAL_SIZE):
    """Images center-cropped and resized to size x size: an NCHW float batch in [-1, 1]."""
    return torch.stack([datasets.to_tensor(ImageOps.fit(load_rgb(p), (size, size))) for p in paths])


def _save_pairs(pairs: list, path: Path, columns: int = 2) -> Path | None:
    """A PNG grid of (before | after) CHW pairs in [-1, 1], `columns` pairs a row; None if empty."""
    if not pairs:
        return None
    cells = [torch.cat(pair, dim=2) for pair in pairs]
    cells += [torch.full_like(cells[0], 1.0)] * (-len(cells) % columns)  # white filler
    rows = [torch.cat(cells[i:i + columns], dim=2) for i in range(0, len(cells), columns)]
    image = datasets.TRAINING.to_pixels(torch.cat(rows, dim=1)).permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def _write_json(obj: dict, path: Path) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")


def format_eval(report: dict) -> str:
    """One line: what was evaluated, the L1s, where the grid and the numbers are."""
    m = report["metrics"]
    parts = [f"{name} {m[key]:.3f}" for key, name in (
        ("cycle_x", "cycle photo"), ("cycle_y", "cycle painting"), ("idt_y", "identity G"),
        ("idt_x", "identity F"), ("change_x", "G moves photos")) if key in m]
    where = f"grid {report['grid']}, " if report["grid"] else ""
    note = "" if report["inverse"] else " (no inverse model F: G-side metrics only)"
    return (f"eval: {report['photos']} photos, {report['paintings']} paintings at {report['size']} px: "
            f"L1 {', '.join(parts)}{note}; {where}numbers {report['json']}")


def run_model_eval(model: str | Path | None, data: str | Path, *, inverse: str | Path | None = None,
                   out: str | Path = "runs/eval", limit: int | None = None,
                   overwrite: bool = False) -> str:
    """`vidgan eval --model M --data DIR`: evaluate with a progress bar; returns the summary line.

    An earlier evaluation's grid.png or eval.json in `out` is replaced only with `overwrite`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VidganError(f"--out {out} is a file; give a folder for grid.png and eval.json")
    existing = [p for p in (out / "grid.png", out / "eval.json") if p.exists()]
    if existing and not overwrite:
        raise VidganError(f"{existing[0]} already exists; pass --overwrite to replace it, or "
                          "give another --out")
    photos, paintings = held_out_images(data, limit)
    bar = Progress("eval", len(photos) + len(paintings), unit="images")
    try:
        with bar:
            report = evaluate_model(model, photos, paintings, inverse=inverse, out=out,
                                    progress=lambda done, _: bar.advance(done - bar.count))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {bar.count} of {bar.total} images: nothing "
                          f"written to {out} (grid.png and eval.json come at the end)") from None
    return format_eval(report)
