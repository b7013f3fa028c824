"""A yardstick for a Van Gogh model: do its outputs look like paintings, and keep the photo?

A small painting-vs-photo classifier (the judge), trained on trainA (paintings) against trainB
(photos) of vangogh2photo and nothing else, says which stylized valB photos it takes for
paintings; the luminance SSIM between each photo and its output says how much of the photo's
structure stays. Baselines: untouched photos; photos recoloured to the paintings' palette (a
judge that took those for paintings would reward colour alone); and photos under heavy noise.
The judge tells paintings from photos, not Van Gogh from anything else: it takes noise for
paint, so only the two targets together (paintings AND structure kept) mean anything.

It is a yardstick, never a training signal: nothing in vidgan/ imports this file.

    python benchmarks/yardstick.py               # train (or load the cached) judge, its accuracy
    python benchmarks/yardstick.py --model M     # judge M on every valB photo -> results/yardstick.json

Quick checks while choosing a recipe read only the first N valB photos (`--limit N`); judging the
chosen model with `--chosen-on N` gives the other photos apart too, the number no choice has seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parents[1] / "shared" / "data" / "vangogh2photo"
CACHE = ROOT / ".cache"
TARGET_PAINTING, TARGET_SSIM = 0.80, 0.50

# The judge's recipe; any change retrains it (the cache key hashes it).
RECIPE = {"load": 128, "crop": 96, "epochs": 30, "batch": 32, "lr": 2e-3, "seed": 0,
          "widths": [16, 32, 64, 128], "scale": [0.3, 1.0], "jitter": 0.15}


class Judge(nn.Module):
    """Four conv-BN-ReLU-maxpool blocks, global average pool, one logit (> 0: painting).

    Input: NCHW float in [-1, 1], any size (trained on 96x96 crops of 128x128 images).
    """

    def __init__(self, widths: list[int]):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
                       nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


# --- images ---------------------------------------------------------------------------------


def prepare(image: Image.Image, size: int = RECIPE["load"]) -> np.ndarray:
    """What the judge sees of any image: center square, `size` px, (size, size, 3) uint8."""
    return np.asarray(ImageOps.fit(image.convert("RGB"), (size, size), Image.BICUBIC))


def load_folder(folder: Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """(names, (N, load, load, 3) uint8) of a folder's images, sorted by name."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = paths[:limit]
    if not paths:
        sys.exit(f"error: no images in {folder}")
    return [p.name for p in paths], np.stack([prepare(Image.open(p)) for p in paths])


def to_batch(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> NCHW float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random resized crops (area scale, aspect 3/4..4/3), mirror, brightness/contrast jitter."""
    import torch.nn.functional as F

    n, _, size, _ = batch.shape
    crop, (lo, hi), jitter = RECIPE["crop"], RECIPE["scale"], RECIPE["jitter"]
    out = torch.empty(n, 3, crop, crop)
    r = torch.rand(n, 7, generator=gen)
    for i in range(n):
        area = lo + (hi - lo) * r[i, 0].item()
        aspect = float(np.exp(np.log(3 / 4) + np.log(16 / 9) * r[i, 1].item()))
        h = min(size, round(size * (area / aspect) ** 0.5))
        w = min(size, round(size * (area * aspect) ** 0.5))
        top, left = int(r[i, 2] * (size - h + 1)), int(r[i, 3] * (size - w + 1))
        patch = batch[i:i + 1, :, top:top + h, left:left + w]
        patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", antialias=True)[0]
        out[i] = patch.flip(2) if r[i, 4] < 0.5 else patch
        contrast, brightness = 1 + jitter * (2 * r[i, 5] - 1), jitter * (2 * r[i, 6] - 1)
        mean = out[i].mean()
        out[i] = ((out[i] - mean) * contrast + mean + brightness).clamp(-1, 1)
    return out


def judge_input(batch: torch.Tensor) -> torch.Tensor:
    """Held-out images: the whole load x load square, resized to the training crop size."""
    import torch.nn.functional as F

    crop = RECIPE["crop"]
    return F.interpolate(batch, size=(crop, crop), mode="bilinear", antialias=True)


# --- the judge ------------------------------------------------------------------------------


def train_judge(paintings: np.ndarray, photos: np.ndarray, log=print) -> Judge:
    """Balanced training: every epoch all paintings and as many photos, drawn afresh."""
    gen = torch.Generator().manual_seed(RECIPE["seed"])
    torch.manual_seed(RECIPE["seed"])
    judge = Judge(RECIPE["widths"])
    opt = torch.optim.AdamW(judge.parameters(), lr=RECIPE["lr"], weight_decay=1e-4)
    steps_per_epoch = -(-2 * len(paintings) // RECIPE["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RECIPE["lr"], total_steps=RECIPE["epochs"] * steps_per_epoch)
    a, b = to_batch(paintings), to_batch(photos)
    judge.train()
    for epoch in range(RECIPE["epochs"]):
        picked = torch.randperm(len(b), generator=gen)[: len(a)]
        x = torch.cat([a, b[picked]])
        y = torch.cat([torch.ones(len(a)), torch.zeros(len(a))])
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), RECIPE["batch"]):
            idx = order[i:i + RECIPE["batch"]]
            loss = nn.functional.binary_cross_entropy_with_logits(judge(augment(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 5 == 0:
            log(f"  judge epoch {epoch + 1}/{RECIPE['epochs']}: loss {total / len(x):.3f}")
    return judge.eval()


@torch.inference_mode()
def painting_scores(judge: Judge, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """P(painting) for (N, load, load, 3) uint8 images."""
    out = [torch.sigmoid(judge(judge_input(to_batch(images[i:i + batch])))) for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def cached_judge(data: Path, retrain: bool = False) -> tuple[Judge, dict]:
    """The judge for `data` and its held-out accuracy, trained once and kept in benchmarks/.cache."""
    names_a = sorted(p.name for p in (data / "trainA").iterdir())
    names_b = sorted(p.name for p in (data / "trainB").iterdir())
    key = hashlib.sha256(json.dumps([RECIPE, names_a, names_b]).encode()).hexdigest()[:12]
    path = CACHE / f"judge-{key}.pt"
    if path.exists() and not retrain:
        saved = torch.load(path, weights_only=False)
        judge = Judge(RECIPE["widths"])
        judge.load_state_dict(saved["state"])
        return judge.eval(), saved["accuracy"]
    print(f"training the judge on {data / 'trainA'} vs {data / 'trainB'} (once; cached in {CACHE})")
    start = time.perf_counter()
    _, paintings = load_folder(data / "trainA")
    _, photos = load_folder(data / "trainB")
    judge = train_judge(paintings, photos)
    accuracy = held_out_accuracy(judge, data)
    accuracy |= {"train_paintings": len(paintings), "train_photos": len(photos),
                 "train_seconds": round(time.perf_counter() - start), "recipe": RECIPE}
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    torch.save({"state": judge.state_dict(), "accuracy": accuracy}, tmp)
    tmp.replace(path)
    return judge, accuracy


def held_out_accuracy(judge: Judge, data: Path) -> dict:
    """Accuracy on valA (paintings) and valB (photos), which the judge never saw."""
    paintings = painting_scores(judge, load_folder(data / "valA")[1])
    photos = painting_scores(judge, load_folder(data / "valB")[1])
    on_a, on_b = float((paintings > 0.5).mean()), float((photos <= 0.5).mean())
    return {"val_paintings": len(paintings), "val_photos": len(photos),
            "valA_called_painting": round(on_a, 4), "valB_called_photo": round(on_b, 4),
            "balanced_accuracy": round((on_a + on_b) / 2, 4)}


# --- structure and colour -------------------------------------------------------------------


def luminance_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma (BT.601 Y) of two (H, W, 3) uint8 RGB images of the same size."""
    from skimage.metrics import structural_similarity

    weights = np.array([0.299, 0.587, 0.114])
    return float(structural_similarity(a @ weights, b @ weights, data_range=255.0))


def tint(photo: np.ndarray, lab_mean: np.ndarray, lab_std: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer: the photo's Lab statistics moved to the paintings' (uint8 RGB)."""
    import warnings

    from skimage import color

    lab = color.rgb2lab(photo)
    lab = (lab - lab.mean((0, 1))) / (lab.std((0, 1)) + 1e-6) * lab_std + lab_mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # out-of-gamut colours are clipped: intended
        return (color.lab2rgb(lab) * 255).round().astype(np.uint8)


def noisy(photo: np.ndarray, sigma: float = 40.0, seed: int = 0) -> np.ndarray:
    """The photo under Gaussian noise of `sigma` (0..255 units)."""
    rng = np.random.default_rng(seed)
    return np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)


def painting_palette(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean over trainA paintings of each one's Lab mean and standard deviation."""
    from skimage import color

    labs = [color.rgb2lab(im) for im in load_folder(data / "trainA")[1]]
    return np.mean([lab.mean((0, 1)) for lab in labs], 0), np.mean([lab.std((0, 1)) for lab in labs], 0)


# --- judging a model ------------------------------------------------------------------------


def stylize_all(model: Path, paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, output) uint8 RGB pairs at the photos' own size, through vidgan's own pipeline."""
    from vidgan.runtime.backends import load_backend
    from vidgan.runtime.stylizer import Stylizer

    stylize = Stylizer(load_backend(model, device="cpu"))
    pairs = []
    for i, p in enumerate(paths):
        photo = np.array(Image.open(p).convert("RGB"))
        pairs.append((photo, stylize(photo)[0].cpu().numpy()))
        if (i + 1) % 25 == 0:
            print(f"  stylized {i + 1}/{len(paths)}", flush=True)
    return pairs


def judge_pairs(judge: Judge, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Fraction of outputs called paintings and luminance SSIM photo vs output."""
    scores = painting_scores(judge, np.stack([prepare(Image.fromarray(out)) for _, out in pairs]))
    ssim = np.array([luminance_ssim(photo, out) for photo, out in pairs])
    return {"called_painting": round(float((scores > 0.5).mean()), 4),
            "mean_p_painting": round(float(scores.mean()), 4),
            "ssim_mean": round(float(ssim.mean()), 4), "ssim_p10": round(float(np.percentile(ssim, 10)), 4),
            "ssim_at_least_0.5": round(float((ssim >= TARGET_SSIM).mean()), 4)}


def measure(model: Path, data: Path, judge: Judge, limit: int | None, chosen_on: int = 0) -> dict:
    paths = sorted(p for p in (data / "valB").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    print(f"stylizing {len(paths)} valB photos with {model}")
    pairs = stylize_all(model, paths)
    mean, std = painting_palette(data)
    return {
        "model": str(model), "photos": len(paths),
        "stylized": judge_pairs(judge, pairs),
        **({"chosen_on": chosen_on, "stylized_unseen": judge_pairs(judge, pairs[chosen_on:])}
           if 0 < chosen_on < len(pairs) else {}),
        "untouched": judge_pairs(judge, [(photo, photo) for photo, _ in pairs]),
        "tinted": judge_pairs(judge, [(photo, tint(photo, mean, std)) for photo, _ in pairs]),
        "noisy": judge_pairs(judge, [(photo, noisy(photo, seed=i)) for i, (photo, _) in enumerate(pairs)]),
        "targets": {"called_painting": TARGET_PAINTING, "ssim_mean": TARGET_SSIM},
    }


def verdict(result: dict) -> str:
    s, u, t, n = result["stylized"], result["untouched"], result["tinted"], result["noisy"]
    return (f"yardstick {_pass(s)}: {s['called_painting']:.0%} of {result['photos']} valB "
            f"outputs judged paintings (target >= {TARGET_PAINTING:.0%}), luminance SSIM {s['ssim_mean']:.3f} "
            f"(target >= {TARGET_SSIM}){_unseen(result)}; baselines: untouched {u['called_painting']:.0%}, tinted "
            f"{t['called_painting']:.0%} (SSIM {t['ssim_mean']:.3f}), noisy {n['called_painting']:.0%} "
            f"(SSIM {n['ssim_mean']:.3f}) judged paintings")


def _pass(s: dict) -> str:
    return "PASS" if s["called_painting"] >= TARGET_PAINTING and s["ssim_mean"] >= TARGET_SSIM else "FAIL"


def _unseen(result: dict) -> str:
    if "stylized_unseen" not in result:
        return ""
    s, n = result["stylized_unseen"], result["photos"] - result["chosen_on"]
    return (f"; on the {n} photos after the first {result['chosen_on']} (unseen by the recipe's choice) "
            f"{_pass(s)}: {s['called_painting']:.0%}, SSIM {s['ssim_mean']:.3f}")


def describe_judge(acc: dict) -> str:
    return (f"judge: {acc['balanced_accuracy']:.1%} balanced accuracy on held-out valA/valB "
            f"({acc['valA_called_painting']:.0%} of {acc['val_paintings']} paintings called paintings, "
            f"{acc['valB_called_photo']:.0%} of {acc['val_photos']} photos called photos); trained on "
            f"{acc['train_paintings']} + {acc['train_photos']} images in {acc['train_seconds']} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="G's model file (photo -> painting) to judge")
    parser.add_argument("--data", type=Path, default=DATA, help="vangogh2photo layout (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N valB photos (a quick check)")
    parser.add_argument("--chosen-on", type=int, default=0, metavar="N",
                        help="the recipe was chosen on the first N valB photos: give the rest apart too")
    parser.add_argument("--retrain", action="store_true", help="train the judge again")
    parser.add_argument("--out", type=Path, help="folder for the result JSON (default: the cache's results/; copy it into benchmarks/results/ to record it)")
    args = parser.parse_args(argv)
    if not (args.data / "trainA").is_dir():
        sys.exit(f"error: {args.data} has no trainA/trainB: give --data")
    if args.model is not None and not args.model.is_file():
        sys.exit(f"error: model file {args.model} does not exist")
    judge, accuracy = cached_judge(args.data, args.retrain)
    print(describe_judge(accuracy))
    if args.model is None:
        return
    result = measure(args.model, args.data, judge, args.limit, args.chosen_on)
    from vidgan.tools.bench.results import write_result

    write_result("yardstick", {"judge": accuracy, **result, "verdict": verdict(result)}, args.out)
    print(verdict(result))


if __name__ == "__main__":
    main()
