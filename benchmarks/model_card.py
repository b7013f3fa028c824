"""The bundled model's card, and the step that bundles a training run's generators.

    python benchmarks/model_card.py --run RUN --bundle   # RUN's G and F -> FP16 in vidgan/weights/
    python benchmarks/model_card.py --run RUN            # the card only

The card (vidgan/weights/MODEL_CARD.md) is built from what the run left: the model files'
metadata (recipe, epochs, steps, step time, final losses), RUN/losses.csv, `vidgan eval`'s
eval.json and grid.png, and the yardstick's JSON. Beside it go a small loss-curve PNG and a
JPEG of valB photos before | after (each under 300 KB).
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bundle import MAX_BUNDLE_BYTES, bundle, bundled_names, fail, fp16_error  # noqa: F401
from PIL import Image

from vidgan.core import modelfile
from vidgan.core.files import write_atomic
from vidgan.tools.bench.results import machine
from vidgan.train import trainlog

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = modelfile.WEIGHTS_DIR
MAX_IMAGE_BYTES = 300 * 1000
LOSS_PNG, SAMPLES_JPG = "vangogh-fast-losses.png", "vangogh-fast-samples.jpg"
HARD_CASES_JPG = "vangogh-hard-cases.jpg"
DATA = REPO.parent / "shared" / "data" / "vangogh2photo"


# --- inputs ---------------------------------------------------------------------------------


def read_json(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def loss_rows(run: Path) -> list[dict]:
    path = run / "losses.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def data_sizes(config: dict) -> dict[str, int]:
    """Images per split of the run's --data folder (relative paths are taken from the repo)."""
    if not config.get("data"):
        return {}
    folder = Path(config["data"])
    folder = folder if folder.is_absolute() else REPO / folder
    suffixes = {".jpg", ".jpeg", ".png"}
    return {split: sum(1 for p in (folder / split).iterdir() if p.suffix.lower() in suffixes)
            for split in ("trainA", "trainB", "valA", "valB") if (folder / split).is_dir()}


def training_state(run: Path, info: modelfile.ModelInfo) -> dict:
    """epochs/steps/train_seconds from the model file, else from the run's newest checkpoint."""
    if info.training.get("steps"):
        return info.training
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    if not ckpts:
        return info.training
    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)["state"]
    return {**info.training, "epochs": state["epoch"], "steps": state["step"],
            "train_seconds": round(state["seconds"])}


@dataclass
class Stage:
    """One training run of the model's history; a later stage warm-starts from an earlier one."""

    run: Path
    config: dict
    training: dict
    rows: list[dict]


def read_stage(run: Path, model: Path) -> Stage:
    """The model file's recipe, with the run's data and warm start from its newest checkpoint
    (model files keep no paths since config version 2; older ones hold them, flat)."""
    info = modelfile.read_info(model)
    return Stage(run, {**info.recipe, **run_fields(run)}, training_state(run, info), loss_rows(run))


def run_fields(run: Path) -> dict:
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    if not ckpts:
        return {}
    config = torch.load(ckpts[-1], map_location="cpu", weights_only=False, mmap=True)["config"]
    return config.get("run", {})


def joined_losses(stages: list[Stage]) -> tuple[list[dict], dict[int, str]]:
    """All stages' loss rows on one step axis, and the step where each later stage starts."""
    rows, marks, offset = [], {}, 0
    for k, stage in enumerate(stages, 1):
        if k > 1:
            marks[offset] = f"stage {k}"
        rows += [{**r, "step": int(r["step"]) + offset} for r in stage.rows]
        offset += int(stage.training.get("steps") or 0)
    return rows, marks


# --- images ---------------------------------------------------------------------------------


def write_loss_png(stages: list[Stage], path: Path) -> Path | None:
    rows, marks = joined_losses(stages)
    if not rows:
        return None
    trainlog.plot_losses(rows, path, marks)
    return _check_size(path)


def write_samples_jpg(grid_png: Path, path: Path, width: int = 768) -> Path | None:
    """The eval grid (valB photo | painting pairs) shrunk to `width` px, as a JPEG < 300 KB."""
    from PIL import Image

    if not grid_png.is_file():
        return None
    im = Image.open(grid_png).convert("RGB")
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    for quality in (85, 75, 65, 55):
        im.save(path, quality=quality, optimize=True)
        if path.stat().st_size < MAX_IMAGE_BYTES:
            break
    return _check_size(path)


def _check_size(path: Path) -> Path:
    if path.stat().st_size >= MAX_IMAGE_BYTES:
        fail(f"{path} is {path.stat().st_size // 1000} KB, over the 300 KB limit")
    return path


# --- the card -------------------------------------------------------------------------------


def card(g: Path, f: Path | None, stages: list[Stage], evaluation: dict | None,
         yardstick: dict | None, images: dict[str, Path | None], hardware: str | None, notes: str,
         fp16: float | None) -> str:
    info = modelfile.read_info(g)
    cfg = stages[-1].config
    parts = [
        _header(g, f, info),
        _recipe(stages),
        _data(stages, data_sizes(cfg)),
        _training(stages, hardware, images.get("losses")),
        _evaluation(evaluation, images.get("samples"), g, f, stages[-1].run),
        _yardstick(yardstick, g, stages[-1].run),
        _hard_cases(images.get("hard_cases")),
        _weaknesses(cfg, evaluation, _entry(yardstick, g, stages[-1].run), fp16, notes),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _header(g: Path, f: Path | None, info: modelfile.ModelInfo) -> str:
    from vidgan.core import models

    n = models.count_parameters(info.build())
    rows = [f"| `{p.name}` | {modelfile.read_info(p).direction} | {n / 1e6:.2f} M | "
            f"{p.stat().st_size / 1e6:.1f} MB | `{modelfile.file_hash(p)}` |" for p in (g, f) if p]
    gf = models.gflops(info.build(), 720, 1280)
    return "\n".join([
        f"# {g.stem}: vidgan's Van Gogh model",
        "",
        ("A CycleGAN (Zhu et al. 2017, arXiv 1703.10593) trained with `vidgan train` on unpaired "
        "photos and Van Gogh paintings. G turns photos into paintings (what `vidgan render`, "
        "`stylize`, `live` and `demo` use); F, the inverse, is kept for evaluation and warm starts."),
        "",
        "| file | direction | parameters | size | sha256[:16] |",
        "|---|---|---|---|---|",
        *rows,
        "",
        (f"Architecture: `{info.arch}` {json.dumps(info.kwargs)} (multiple of {info.multiple} px); "
        f"{gf:.0f} GFLOP per 1280x720 frame."),
    ])


def _recipe(stages: list[Stage]) -> str:
    if not any(s.config for s in stages):
        return "## Recipe\n\nThe model file holds no training config."
    keys = ("recipe", "generator", "generator_kwargs", "gan_loss", "crop", "load_size", "batch_size",
            "epochs", "decay_epochs", "max_steps", "lr", "beta1", "beta2", "lambda_cycle",
            "lambda_identity", "lambda_tv", "pool_size", "seed", "warm_start")
    columns = ["value"] if len(stages) == 1 else [f"stage {k}" for k in range(1, len(stages) + 1)]
    rows = [f"| {key} | " + " | ".join(_setting(s, key, stages) for s in stages) + " |"
            for key in keys if any(key in s.config for s in stages)]
    return "\n".join(["## Recipe", "", f"| setting | {' | '.join(columns)} |",
                      "|---" * (len(columns) + 1) + "|", *rows])


def _setting(stage: Stage, key: str, stages: list[Stage]) -> str:
    if key not in stage.config:
        return ""
    origin = _warm_start_stage(stage, stages) if key == "warm_start" else None
    return f"G and F of stage {origin}" if origin else f"`{json.dumps(stage.config[key])}`"


def _warm_start_stage(stage: Stage, stages: list[Stage]) -> int | None:
    """Which earlier stage's run folder `stage` took its generators from, if any."""
    folders = {Path(p).resolve().parent for p in stage.config.get("warm_start") or []}
    for k, earlier in enumerate(stages, 1):
        if folders == {earlier.run.resolve()}:
            return k
    return None


def _data(stages: list[Stage], sizes: dict[str, int]) -> str:
    cfg = stages[-1].config
    if not sizes:
        return f"## Data\n\n`{cfg.get('data') or cfg.get('data_a')}` (not found now: sizes unknown)."
    described = ", ".join(f"{split} {n}" for split, n in sizes.items())
    crops = [f"resized the shorter side to {s.config.get('load_size')} px, then took random "
             f"{s.config.get('crop')} px crops, mirrored at random" for s in stages]
    crops = "; ".join(f"{'training' if len(stages) == 1 else f'stage {k}'} {c}"
                      for k, c in enumerate(crops, 1))
    return (f"## Data\n\n`{cfg['data']}` ({described}): A = Van Gogh paintings, B = photos, mostly "
            "landscapes (see the data set's SOURCE.md). Training used trainA and trainB only; valA and "
            f"valB are held out for the numbers below. {crops[0].upper()}{crops[1:]}.")


def _training(stages: list[Stage], hardware: str | None, loss_png: Path | None) -> str:
    lines = ["## Training", ""]
    for k, stage in enumerate(stages, 1):
        lines.append(("- " if len(stages) == 1 else f"- stage {k}, {_origin(stage, stages)}: ")
                     + _stage_summary(stage))
    steps = sum(int(s.training.get("steps") or 0) for s in stages)
    seconds = sum(s.training.get("train_seconds") or 0 for s in stages)
    if len(stages) > 1:
        lines.append(f"- in all: {steps} steps, {duration(seconds)} in training steps")
    device = stages[-1].training.get("device", "?")
    lines.append(f"- hardware: {hardware or hardware(device)}")
    final = stages[-1].training.get("final_losses") or {}
    if final:
        lines += ["", ("Final losses (mean of the last 50 logged rows; cycle and identity are L1 in "
                  "[-1, 1] units, adversarial and discriminator are least squares):"), "",
                  "| " + " | ".join(final) + " |", "|" + "---|" * len(final),
                  "| " + " | ".join(f"{v:.3f}" for v in final.values()) + " |"]
    if loss_png:
        lines += ["", f"![loss curves]({loss_png.name})"]
    return "\n".join(lines)


def _origin(stage: Stage, stages: list[Stage]) -> str:
    recipe = f"`{stage.config.get('recipe', '?')}`"
    k = _warm_start_stage(stage, stages)
    if k:
        return f"{recipe}, warm-started from stage {k}'s G and F with fresh discriminators"
    return f"{recipe}, from scratch" if not stage.config.get("warm_start") else f"{recipe}, warm-started"


def _stage_summary(stage: Stage) -> str:
    cfg, tr = stage.config, stage.training
    steps, seconds = tr.get("steps"), tr.get("train_seconds")
    full, planned = tr.get("epochs", "?"), cfg.get("epochs")
    epochs = (f"{full} full epochs of {planned} planned" if full != 0 else
              "part of the first epoch" + (f" of {planned} planned" if planned != 1 else ""))
    text = f"{epochs}, {steps} steps (batch {cfg.get('batch_size')})"
    if cfg.get("max_steps"):
        text += f", stopped by max_steps {cfg['max_steps']}"
    if seconds:
        text += f"; {duration(seconds)} in training steps ({steps / seconds:.2f} steps/s)"
    return text


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def hardware(device: str) -> str:
    m = machine()
    return f"{device} ({m['cpu']}, {m['cores']} cores, torch {m['torch']}: the machine that wrote this card)"


def _evaluation(ev: dict | None, samples: Path | None, g: Path, f: Path | None, run: Path) -> str:
    if ev is None:
        return "## Held-out evaluation\n\nNot run: `vidgan eval --model MODEL --data DATA`."
    m = ev["metrics"]
    names = {"cycle_x": "cycle L1 on valB photos x, F(G(x)) vs x",
             "cycle_y": "cycle L1 on valA paintings y, G(F(y)) vs y",
             "idt_y": "identity L1 of G on paintings, G(y) vs y",
             "idt_x": "identity L1 of F on photos, F(x) vs x",
             "change_x": "how far G moves a photo, G(x) vs x",
             "change_y": "how far F moves a painting, F(y) vs y"}
    rows = [f"| {names[k]} | {m[k]:.3f} |" for k in names if k in m]
    source = ""
    if ev.get("model_hash") != modelfile.file_hash(g):
        original = run / "model.safetensors"
        same = original.is_file() and ev.get("model_hash") == modelfile.file_hash(original)
        source = (" (measured on the training run's FP32 `model.safetensors`)" if same
                  else f" (measured on `{ev['model']}`, NOT this model: rerun it)")
    lines = ["## Held-out evaluation", "",
             (f"`vidgan eval` on {ev['photos']} valB photos and {ev['paintings']} valA paintings, "
             f"center-cropped to {ev['size']} px{source}; L1 is the mean absolute difference in [-1, 1] "
             "units (0 = identical, 2 = opposite)."), "", "| metric | value |", "|---|---|", *rows]
    if samples:
        lines += ["", "valB photos (never trained on), before | after:", "",
                  f"![valB samples]({samples.name})"]
    return "\n".join(lines)


def _measured_model(model: str, g: Path, run: Path) -> str:
    path = Path(model).resolve()
    if path == g.resolve():
        return "this file"
    if path == (run / "model.safetensors").resolve():
        return "the training run's FP32 `model.safetensors`"
    return f"`{model}`"


def _yardstick(y: dict | None, g: Path, run: Path) -> str:
    """The card's yardstick section from yardstick.py's JSON: this model's entry in it."""
    entry = _entry(y, g, run)
    if entry is None:
        return "## Yardstick\n\nNot run: `python benchmarks/yardstick.py --model MODEL`."
    j, (rows, verdict) = y["judge"], yardstick_rows(entry)
    return "\n".join([
        "## Yardstick (benchmarks/yardstick.py)", "",
        ("Two painting-vs-photo classifiers trained on trainA vs trainB only, with label-preserving "
         "edits (colour transfer, casts, saturation, gamma, grayscale, blur, bilateral and cartoon "
         "smoothing, posterization, JPEG) applied to both classes so that palette or softness alone "
         "cannot pass: one sees strokes at the image's own scale, the other the whole picture at half "
         "size, and an output is a painting only when both say so. Never a training signal. They call "
         f"{j['paintings']['valA paintings (should be high)']['called_painting']:.0%} of the held-out "
         f"paintings paintings, {j['photos']['untouched']['called_painting']:.0%} of the held-out photos, "
         f"and at most {j['worst_probe']:.0%} of those under any edit (BENCHMARKS.md has the table)."),
        "", f"On the valB photos, stylized by {_measured_model(entry['model'], g, run)}:", "",
        "| valB photos | judged paintings | ... and luminance SSIM >= 0.5 | luminance SSIM (mean, 10th pct.) |",
        "|---|---|---|---|", *rows, "", verdict])


def _entry(y: dict | None, g: Path, run: Path) -> dict | None:
    """This model's result in the yardstick's JSON (the bundled file or the run's FP32 one)."""
    for entry in (y or {}).get("models", []):
        if _measured_model(entry["model"], g, run) != f"`{entry['model']}`":
            return entry
    return None


def yardstick_rows(entry: dict) -> tuple[list[str], str]:
    """Table rows (the choice split, the unseen rest, all) and a verdict against issue 17's
    targets on the unseen photos: 85% paintings, 80% paintings that keep SSIM >= 0.5."""
    names = {"choice": "the first 60 (recipes were chosen on them)",
             "unseen": "the other 140 (no choice saw them)", "all": "all 200"}
    rows = [f"| {name} | {entry[k]['called_painting']:.0%} | {entry[k]['painting_and_ssim']:.0%} | "
            f"{entry[k]['ssim_mean']:.3f}, {entry[k]['ssim_p10']:.3f} |" for k, name in names.items()]
    u = entry["unseen"]
    verdict = (f"Targets on the unseen photos: at least 85% judged paintings ({u['called_painting']:.0%}: "
               f"{'met' if u['called_painting'] >= 0.85 else 'not met'}), and at least 80% both judged "
               f"paintings and SSIM >= 0.5 ({u['painting_and_ssim']:.0%}: "
               f"{'met' if u['painting_and_ssim'] >= 0.80 else 'not met'}).")
    return rows, verdict


HARD_CASES = {  # valB's three flattest photos (least detail), a portrait, an animal
    "flat night sky": "ph_kaggle_2b6cd9bbf2.jpg", "sunset sky": "ph_kaggle_b220f59b09.jpg",
    "still water": "ph_kaggle_7801bb9581.jpg", "portrait": "astronaut", "cat": "chelsea",
}


def hard_cases(models: list[Path], data: Path, path: Path) -> Path:
    """A fixed grid, a row per HARD_CASES image: photo | each model's painting, 256 px each."""
    import cv2
    import skimage.data

    from vidgan.runtime.stylizer import Stylizer

    photos = [np.asarray(Image.open(data / "valB" / name).convert("RGB")) if name.endswith(".jpg")
              else getattr(skimage.data, name)() for name in HARD_CASES.values()]
    photos = [cv2.resize(_square(p), (256, 256), interpolation=cv2.INTER_AREA) for p in photos]
    columns = [np.vstack(photos)]
    for model in models:
        stylize = Stylizer.build(model, device="cpu", precision="fp32")
        columns.append(np.vstack([stylize(p)[0].numpy() for p in photos]))
    Image.fromarray(np.hstack(columns)).save(path, quality=80)
    return _check_size(path)


def _hard_cases(image: Path | None) -> str:
    if image is None:
        return ""
    return ("## Hard cases\n\nA fixed set where things go wrong first: valB's three flattest photos "
            "(least detail), a portrait and an animal (scikit-image's astronaut and cat); photo | "
            "`vangogh-fast` | `vangogh-realtime`, each at 256 px:\n\n"
            f"![hard cases: photo, teacher, student]({image.name})")


def _square(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - min(h, w)) // 2, (w - min(h, w)) // 2
    return image[top:top + min(h, w), left:left + min(h, w)]


def _weaknesses(cfg: dict, ev: dict | None, y: dict | None, fp16: float | None, notes: str) -> str:
    items = [
        ("Photos of people, animals and indoor scenes are far from the mostly-landscape training "
        "photos; expect weaker, blotchier results there (the original project saw the same)."),
        (f"Trained on {cfg.get('crop', '?')} px crops of images {cfg.get('load_size', '?')} px on the "
        "shorter side: the brush texture is sized for scenes at that scale. A processing height of a few hundred "
        "pixels (`--height`) gives larger strokes than full HD."),
        "Frame by frame it flickers on video: use `--stabilize` and measure with `vidgan eval --video`.",
    ]
    if y is not None:
        s = y["unseen"]
        if s["called_painting"] < 0.85:
            items.append(f"The yardstick takes only {s['called_painting']:.0%} of its outputs on unseen "
                         "valB photos for paintings (target 85%), the flat scenes least of all.")
        if s["ssim_mean"] < 0.5:
            items.append(f"Luminance SSIM to the photo is {s['ssim_mean']:.2f} (target 0.5): structure "
                         "is not kept well enough.")
    if fp16 is not None:
        items.append(f"Stored in FP16: on a valB photo its output differs from the FP32 original by "
                     f"at most {fp16:.4f} ([-1, 1] units).")
    text = "\n".join(f"- {item}" for item in items)
    return "## Known weaknesses\n\n" + text + (f"\n\n{notes.strip()}" if notes.strip() else "")


STUDENT_MARK = "<!-- the real-time student: written by benchmarks/student.py card -->"


def student_section(card_path: Path) -> str:
    """The student's section of an existing card (kept when the teacher's part is rewritten)."""
    text = card_path.read_text() if card_path.is_file() else ""
    return "\n" + text[text.index(STUDENT_MARK):] if STUDENT_MARK in text else ""


def write_card(path: Path, text: str) -> None:
    write_atomic(path, text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the training run folder")
    parser.add_argument("--earlier", type=Path, action="append", default=[],
                        help="an earlier run this one warm-started from (repeat, oldest first)")
    parser.add_argument("--bundle", action="store_true", help="first convert RUN's G and F to FP16 in --weights")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="where the card and the bundled files go")
    parser.add_argument("--eval", type=Path, default=REPO / "runs" / "eval" / "eval.json", dest="evaluation",
                        help="`vidgan eval`'s eval.json (its grid.png beside it)")
    parser.add_argument("--yardstick", type=Path, default=REPO / "benchmarks" / "results" / "yardstick.json")
    parser.add_argument("--data", type=Path, default=DATA, help="vangogh2photo, for the hard cases' photos")
    parser.add_argument("--hardware", help="where it trained, e.g. '2-core Xeon CPU' (default: this machine)")
    parser.add_argument("--notes", type=Path, help="a Markdown file of observations added to the weaknesses")
    args = parser.parse_args(argv)
    for run in (*args.earlier, args.run):
        if not run.is_dir():
            fail(f"run folder {run} does not exist")
    for run in args.earlier:
        if not (run / "model.safetensors").is_file():
            fail(f"{run / 'model.safetensors'} does not exist: `vidgan train --export-only CKPT` writes it")
    args.weights.mkdir(parents=True, exist_ok=True)
    if args.bundle:
        bundle(args.run, args.weights)
    g_name, f_name = bundled_names()
    g, f = args.weights / g_name, args.weights / f_name
    if not g.is_file():
        fail(f"{g} does not exist: bundle the run first (--bundle)")
    evaluation, yardstick = read_json(args.evaluation), read_json(args.yardstick)
    val_photo = next(iter(sorted(Path(evaluation["photos_folder"]).glob("*"))), None) if evaluation else None
    fp16 = fp16_error(args.run / "model.safetensors", g, val_photo) if (args.run / "model.safetensors").is_file() else None
    stages = [read_stage(run, run / "model.safetensors") for run in args.earlier]
    stages.append(read_stage(args.run, g))
    students = [p for p in (args.weights / modelfile.REALTIME.name,) if p.is_file()]
    images = {"losses": write_loss_png(stages, args.weights / LOSS_PNG),
              "hard_cases": hard_cases([g, *students], args.data, args.weights / HARD_CASES_JPG)
              if (args.data / "valB").is_dir() else None,
              "samples": write_samples_jpg(Path(evaluation["grid"]), args.weights / SAMPLES_JPG)
              if evaluation and evaluation.get("grid") else None}
    notes = args.notes.read_text() if args.notes else ""
    text = card(g, f if f.is_file() else None, stages, evaluation, yardstick, images, args.hardware, notes, fp16)
    out = args.weights / "MODEL_CARD.md"
    write_card(out, text + student_section(out))
    print(f"wrote {out}" + "".join(f", {p}" for p in images.values() if p))
    for name, given in (("eval.json", evaluation), ("yardstick.json", yardstick)):
        if given is None:
            print(f"note: no {name}: its section of the card says how to produce it")


if __name__ == "__main__":
    main()
