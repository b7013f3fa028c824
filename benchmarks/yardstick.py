"""The yardstick for a Van Gogh model: do its outputs look like paintings, and keep the photo?

A painting-vs-photo classifier (the judge), trained on trainA (paintings) against trainB
(photos) of vangogh2photo and nothing else, says which stylized valB photos it takes for
paintings; the luminance SSIM between each photo and its output says how much of the photo's
structure stays. A model passes only where both hold for the same output.

The judge is built to be hard to fool. While it trains, label-preserving edits are applied at
random to BOTH classes (colour transfer to another image's statistics, casts, saturation, gamma,
grayscale, blur, bilateral and cartoon smoothing, posterization, JPEG 25-95), so that a palette,
softness or flatness alone is no evidence of paint. Its robustness table says how often it
calls edited photos paintings: the edits it trained on, and edits it never saw (sharpening,
noise, downscaling, detail enhancement, frames of real video clips). Each should stay at 15% or
less; a model's number means little where they don't.

It is a yardstick, never a training signal: nothing in vidgan/ imports this file.

    python benchmarks/yardstick.py                      # train (or load) the judge; its table
    python benchmarks/yardstick.py --model A --model B  # judge models side by side

The first 60 valB photos (sorted by name) are the ones recipes may be chosen on; every report
gives the other 140, which no choice saw, apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from vidgan.core.cache import cache_dir, results_dir
from vidgan.core.progress import Progress

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parents[1] / "shared" / "data" / "vangogh2photo"
CLIPS = ROOT.parents[1] / "shared" / "data" / "videos"
SIZE = 256  # every image is judged as a 256x256 square at its native scale
CHOICE = 60  # valB photos that recipes may be chosen on
TARGET_PAINTING, TARGET_BOTH, TARGET_SSIM, TARGET_PROBE = 0.85, 0.80, 0.50, 0.15
SUFFIXES = (".jpg", ".jpeg", ".png")

# The judges' recipe; any change retrains them (each one's cache key hashes it with its view).
RECIPE = {"scale": [0.75, 1.33], "epochs": 60, "batch": 16, "lr": 2e-3, "weight_decay": 5e-4,
          "seed": 0, "widths": [32, 64, 128, 256], "edit_p": 0.75}
# Two judges see every image in two ways, and an image is a painting only when both say so:
# strokes at the size they have in the image, and the whole picture at half size (layout,
# colour, the larger strokes), where a photo's fine texture with paint-like grain is no help.
VIEWS = {"native": {"factor": 1.0, "crop": 128}, "whole": {"factor": 0.5, "crop": 96}}


# --- nuisance edits: each keeps the label and returns (H, W, 3) uint8 RGB --------------------


def lab_stats(image: np.ndarray) -> np.ndarray:
    """(2, 3): the mean and standard deviation of an RGB image's CIELAB channels."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return np.stack([lab.mean(0), lab.std(0)])


def colour_transfer(image: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Reinhard's transfer: the image's Lab mean and spread moved to `stats` (from lab_stats)."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    own, stats = lab_stats(image), np.asarray(stats, np.float32)
    lab = (lab - own[0]) / (own[1] + 1e-3) * stats[1] + stats[0]
    lab[..., 0] = lab[..., 0].clip(0, 100)
    return _u8(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255)


def cast(image: np.ndarray, gains) -> np.ndarray:
    return _u8(image * np.asarray(gains, np.float32))


def saturation(image: np.ndarray, factor: float) -> np.ndarray:
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return _u8(grey[..., None] + factor * (image - grey[..., None]))


def gamma(image: np.ndarray, g: float) -> np.ndarray:
    return _u8(255 * (image / 255.0) ** g)


def grayscale(image: np.ndarray) -> np.ndarray:
    return saturation(image, 0.0)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def bilateral(image: np.ndarray, sigma_colour: float, passes: int = 2) -> np.ndarray:
    for _ in range(passes):
        image = cv2.bilateralFilter(image, 9, sigma_colour, 7)
    return image


def cartoon(image: np.ndarray, sigma_r: float) -> np.ndarray:
    """OpenCV's edge-preserving stylization: flat regions of colour, like a cel or watercolour."""
    return cv2.stylization(image, sigma_s=60, sigma_r=sigma_r)


def posterize(image: np.ndarray, levels: int) -> np.ndarray:
    step = 256 / levels
    return _u8((np.floor(image / step) + 0.5) * step)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def sharpen(image: np.ndarray, amount: float = 1.5) -> np.ndarray:
    return _u8(image + amount * (image - cv2.GaussianBlur(image, (0, 0), 1.5).astype(np.float32)))


def noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return _u8(image + np.random.default_rng(seed).normal(0, sigma, image.shape))


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def detail(image: np.ndarray) -> np.ndarray:
    return cv2.detailEnhance(image, sigma_s=10, sigma_r=0.15)


def _u8(x) -> np.ndarray:
    return np.clip(np.asarray(x, np.float32).round(), 0, 255).astype(np.uint8)


def random_edit(image: np.ndarray, rng: np.random.Generator, palettes: np.ndarray) -> np.ndarray:
    """One or two training edits drawn at random (or none, with probability 1 - edit_p).

    `palettes`: lab_stats of training images of both classes, the targets of colour transfer.
    """
    if rng.random() >= RECIPE["edit_p"]:
        return image
    edits = [
        lambda x: colour_transfer(x, palettes[rng.integers(len(palettes))]),
        lambda x: cast(x, rng.uniform(0.8, 1.2, 3)),
        lambda x: saturation(x, rng.uniform(0.2, 1.8)),
        lambda x: gamma(x, rng.uniform(0.6, 1.6)),
        grayscale,
        lambda x: blur(x, rng.uniform(0.6, 2.5)),
        lambda x: bilateral(x, rng.uniform(20, 90), int(rng.integers(1, 4))),
        lambda x: cartoon(x, rng.uniform(0.2, 0.6)),
        lambda x: posterize(x, int(rng.integers(3, 9))),
        lambda x: jpeg(x, rng.integers(25, 96)),
    ]
    for i in rng.choice(len(edits), size=int(rng.integers(1, 3)), replace=False):
        image = edits[i](image)
    return image


# --- the robustness table: edits of held-out photos that must not pass as paintings ----------

def probes(painting_palette: np.ndarray) -> dict:
    """name -> (edit(image, index), seen in training?). Fixed strengths: the same every run."""
    return {
        "untouched": (lambda x, i: x, True),
        "recoloured to the paintings' palette": (lambda x, i: colour_transfer(x, painting_palette), True),
        "blurred (sigma 1.5 px)": (lambda x, i: blur(x, 1.5), True),
        "smoothed (bilateral x3)": (lambda x, i: bilateral(x, 75, 3), True),
        "cartoon (cv2.stylization)": (lambda x, i: cartoon(x, 0.45), True),
        "posterized (4 levels)": (lambda x, i: posterize(x, 4), True),
        "JPEG quality 30": (lambda x, i: jpeg(x, 30), True),
        "sharpened (unsharp 1.5)": (lambda x, i: sharpen(x), False),
        "noise (sigma 10)": (lambda x, i: noise(x, 10, i), False),
        "noise (sigma 25)": (lambda x, i: noise(x, 25, i), False),
        "downscaled 1/2 and back": (lambda x, i: downscale(x, 0.5), False),
        "downscaled 1/4 and back": (lambda x, i: downscale(x, 0.25), False),
        "detail enhanced (cv2.detailEnhance)": (lambda x, i: detail(x), False),
    }


# --- images -----------------------------------------------------------------------------------


def square(image: np.ndarray) -> np.ndarray:
    """The centre square of an RGB image, resized to SIZE (area-averaged when shrinking)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top:top + side, left:left + side]
    if side == SIZE:
        return np.ascontiguousarray(crop)
    interpolation = cv2.INTER_AREA if side > SIZE else cv2.INTER_CUBIC
    return cv2.resize(crop, (SIZE, SIZE), interpolation=interpolation)


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def load_images(paths: list[Path]) -> np.ndarray:
    """(N, SIZE, SIZE, 3) uint8 RGB."""
    return np.stack([square(np.asarray(Image.open(p).convert("RGB"))) for p in paths])


def clip_frames(folder: Path, per_clip: int = 12) -> np.ndarray:
    """Frames spread evenly over each clip in `folder`: photos of another collection."""
    import av

    frames = []
    for path in sorted(folder.glob("*.mp4")):
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        picks = np.linspace(0, len(decoded) - 1, per_clip).round().astype(int)
        frames += [square(decoded[i]) for i in sorted(set(picks))]
    return np.stack(frames) if frames else np.zeros((0, SIZE, SIZE, 3), np.uint8)


def to_batch(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> NCHW float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def scaled(image: np.ndarray, factor: float) -> np.ndarray:
    """An (H, W, 3) uint8 image scaled by `factor` (area-averaged)."""
    if factor == 1:
        return image
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def resized(images: np.ndarray, factor: float) -> np.ndarray:
    return images if factor == 1 else np.stack([scaled(x, factor) for x in images])


def random_crop(image: np.ndarray, rng: np.random.Generator, crop: int) -> np.ndarray:
    """A `crop` square at a scale near the image's own, mirrored half the time."""
    lo, hi = RECIPE["scale"]
    side = min(image.shape[0], round(crop / rng.uniform(lo, hi)))
    top = rng.integers(image.shape[0] - side + 1)
    left = rng.integers(image.shape[1] - side + 1)
    patch = cv2.resize(image[top:top + side, left:left + side], (crop, crop),
                       interpolation=cv2.INTER_AREA if side > crop else cv2.INTER_CUBIC)
    return patch[:, ::-1] if rng.random() < 0.5 else patch


# --- the judge --------------------------------------------------------------------------------


class Judge(nn.Module):
    """Four stages of two conv-BN-ReLU layers and a max-pool, global average pool, one logit
    (> 0: painting). Input: NCHW float in [-1, 1], any size; trained on crops at its view's
    scale, so it sees brush strokes at the size they have there."""

    def __init__(self, widths: list[int]):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            for c in (cin, w):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)]
            layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(cin, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def train_judge(paintings: np.ndarray, photos: np.ndarray, view: dict, log=print) -> Judge:
    """Balanced: every epoch all paintings and as many photos drawn afresh, each edited at random
    at full size, then seen at the view's scale."""
    rng = np.random.default_rng(RECIPE["seed"])
    torch.manual_seed(RECIPE["seed"])
    palettes = np.stack([lab_stats(x) for x in np.concatenate([paintings, photos])])
    judge = Judge(RECIPE["widths"])
    opt = torch.optim.AdamW(judge.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    per_epoch = -(-2 * len(paintings) // RECIPE["batch"])
    total = RECIPE["epochs"] * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RECIPE["lr"], total_steps=total)
    judge.train()
    start, step = time.perf_counter(), 0
    for epoch in range(RECIPE["epochs"]):
        images = np.concatenate([paintings, photos[rng.choice(len(photos), len(paintings), replace=False)]])
        labels = np.r_[np.ones(len(paintings)), np.zeros(len(paintings))].astype(np.float32)
        order = rng.permutation(len(images))
        losses = []
        for i in range(0, len(order), RECIPE["batch"]):
            idx = order[i:i + RECIPE["batch"]]
            x = to_batch(np.stack([random_crop(scaled(random_edit(images[j], rng, palettes), view["factor"]),
                                               rng, view["crop"]) for j in idx]))
            loss = nn.functional.binary_cross_entropy_with_logits(judge(x), torch.from_numpy(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
        rate = step / (time.perf_counter() - start)
        log(f"  judge epoch {epoch + 1}/{RECIPE['epochs']}: loss {np.mean(losses):.3f}, "
            f"{rate:.2f} steps/s, ETA {(total - step) / rate / 60:.0f} min")
    return judge.eval()


class Judges:
    """The two views' judges; an image's P(painting) is the lower of their two."""

    def __init__(self, nets: dict[str, Judge]):
        self.nets = nets

    def by_view(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {name: view_scores(net, resized(images, VIEWS[name]["factor"]))
                for name, net in self.nets.items()}

    def scores(self, images: np.ndarray) -> np.ndarray:
        return np.min(list(self.by_view(images).values()), axis=0)


@torch.inference_mode()
def view_scores(judge: Judge, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """P(painting) for (N, H, W, 3) uint8 images, each judged whole."""
    if len(images) == 0:
        return np.zeros(0)
    out = [torch.sigmoid(judge(to_batch(images[i:i + batch]))) for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def painting_scores(judges: Judges, images: np.ndarray) -> np.ndarray:
    return judges.scores(images)


def robustness(judges: Judges, data: Path, clips: Path | None) -> dict:
    """The share called paintings: held-out paintings (high is right), held-out photos under
    every probe and frames of real clips (each should be <= TARGET_PROBE); each view's own
    share beside it."""
    paintings, photos = load_images(image_paths(data / "valA")), load_images(image_paths(data / "valB"))
    palette = np.mean([lab_stats(x) for x in load_images(image_paths(data / "trainA"))], axis=0)
    table = {"valA paintings (should be high)": _rates(judges, paintings),
             "valA paintings, JPEG quality 30": _rates(judges, np.stack([jpeg(x, 30) for x in paintings])),
             "valA paintings, blurred (sigma 1.5 px)": _rates(judges, np.stack([blur(x, 1.5) for x in paintings]))}
    rows, edits = {}, probes(palette)
    with Progress("robustness", len(edits), unit="edits of valB",
                  first_line=f"judging the {len(photos)} valB photos under {len(edits)} edits") as bar:
        for name, (edit, seen) in edits.items():
            rows[name] = _rates(judges, np.stack([edit(x, i) for i, x in enumerate(photos)])) | {
                "seen_in_training": seen}
            bar.advance()
    if clips is not None and clips.is_dir():
        frames = clip_frames(clips)
        rows[f"{len(frames)} frames of the clips in {clips.name}/"] = _rates(judges, frames) | {
            "seen_in_training": False}
    worst = max(r["called_painting"] for r in rows.values())
    return {"paintings": table, "photos": rows, "worst_probe": worst,
            "probes_pass": worst <= TARGET_PROBE}


def _rates(judges: Judges, images: np.ndarray) -> dict:
    """Share called paintings by both views, and by each one."""
    views = judges.by_view(images)
    both = np.min(list(views.values()), axis=0)
    return {"called_painting": _share(both), "by_view": {k: _share(v) for k, v in views.items()}}


def _share(scores: np.ndarray) -> float:
    return round(float((scores > 0.5).mean()), 4) if len(scores) else 0.0


def cache_folder() -> Path:
    """Where the trained judges are kept: the per-user cache's yardstick/."""
    return cache_dir() / "yardstick"


def cached_judges(data: Path, clips: Path | None, retrain: bool = False) -> tuple[Judges, dict]:
    """The judges for `data` and their report (robustness table), each trained once and cached."""
    names = [[p.name for p in image_paths(data / split)] for split in ("trainA", "trainB")]
    keys = {v: hashlib.sha256(json.dumps([RECIPE, VIEWS[v], names]).encode()).hexdigest()[:12]
            for v in VIEWS}
    folder = cache_folder()
    report_path = folder / f"report-{'-'.join(keys.values())}.json"
    nets, trained, seconds = {}, False, 0
    paintings = photos = None
    for view, key in keys.items():
        path = folder / f"judge-{view}-{key}.pt"
        nets[view] = Judge(RECIPE["widths"])
        if path.exists() and not retrain:
            nets[view].load_state_dict(torch.load(path, weights_only=True))
            continue
        if paintings is None:
            paintings = load_images(image_paths(data / "trainA"))
            photos = load_images(image_paths(data / "trainB"))
        print(f"training the {view} judge on {data / 'trainA'} vs {data / 'trainB'} (once; cached in {folder})")
        start = time.perf_counter()
        nets[view] = train_judge(paintings, photos, VIEWS[view])
        seconds += time.perf_counter() - start
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(nets[view].state_dict(), path.with_suffix(".partial"))
        path.with_suffix(".partial").replace(path)
        trained = True
    judges = Judges({k: net.eval() for k, net in nets.items()})
    if report_path.exists() and not trained:
        return judges, json.loads(report_path.read_text())
    report = {"train_paintings": len(image_paths(data / "trainA")),
              "train_photos": len(image_paths(data / "trainB")), "train_seconds": round(seconds),
              "recipe": RECIPE, "views": VIEWS, **robustness(judges, data, clips)}
    report_path.with_suffix(".partial").write_text(json.dumps(report, indent=2))
    report_path.with_suffix(".partial").replace(report_path)
    return judges, report


# --- judging a model --------------------------------------------------------------------------


def luminance_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma (BT.601 Y) of two (H, W, 3) uint8 RGB images of the same size."""
    from skimage.metrics import structural_similarity

    weights = np.array([0.299, 0.587, 0.114])
    return float(structural_similarity(a @ weights, b @ weights, data_range=255.0))


def stylize_all(model: Path, photos: np.ndarray) -> np.ndarray:
    """The model's outputs for (N, H, W, 3) uint8 photos, through vidgan's own pipeline."""
    from vidgan.runtime.stylizer import Stylizer

    stylize = Stylizer.build(model, device="cpu")
    return np.stack([stylize(photo)[0].cpu().numpy() for photo in photos])


def judge_outputs(judges: Judges, photos: np.ndarray, outputs: np.ndarray) -> dict:
    """Share called paintings, luminance SSIM to the photo, and both at once, per image."""
    scores = painting_scores(judges, outputs)
    ssim = np.array([luminance_ssim(p, o) for p, o in zip(photos, outputs)])
    painted = scores > 0.5
    return {"photos": len(photos), "called_painting": round(float(painted.mean()), 4),
            "painting_and_ssim": round(float((painted & (ssim >= TARGET_SSIM)).mean()), 4),
            "mean_p_painting": round(float(scores.mean()), 4),
            "ssim_mean": round(float(ssim.mean()), 4), "ssim_p10": round(float(np.percentile(ssim, 10)), 4)}


def measure(judges: Judges, model: Path, photos: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """(report, outputs, scores): the model on valB, the choice split and the unseen rest apart."""
    outputs = stylize_all(model, photos)
    choice = min(CHOICE, len(photos) - 1)
    report = {"model": str(model),
              "all": judge_outputs(judges, photos, outputs),
              "choice": judge_outputs(judges, photos[:choice], outputs[:choice]),
              "unseen": judge_outputs(judges, photos[choice:], outputs[choice:])}
    report["pass"] = _passes(report["unseen"])
    return report, outputs, painting_scores(judges, outputs)


def _passes(r: dict) -> bool:
    return (r["called_painting"] >= TARGET_PAINTING and r["painting_and_ssim"] >= TARGET_BOTH
            and r["ssim_mean"] >= TARGET_SSIM)


def contact_sheet(photos: np.ndarray, outputs: np.ndarray, scores: np.ndarray, n: int = 6) -> np.ndarray:
    """Photo over output for the n lowest- and n highest-scored outputs, score written on each."""
    order = np.argsort(scores)
    picks = list(order[:n]) + list(order[-n:])
    columns = []
    for i in picks:
        out = outputs[i].copy()
        cv2.putText(out, f"{scores[i]:.2f}", (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        columns.append(np.concatenate([square(photos[i]), square(out)]))
    return np.concatenate(columns, axis=1)


def describe(report: dict) -> str:
    t, rows = report["paintings"], report["photos"]
    worst = max(rows, key=lambda k: rows[k]["called_painting"])
    return (f"judges: {t['valA paintings (should be high)']['called_painting']:.0%} of held-out paintings "
            f"called paintings by both; "
            f"held-out photos called paintings: {rows['untouched']['called_painting']:.0%} untouched, "
            f"at most {report['worst_probe']:.0%} under any probe ({worst}); "
            f"probes {'PASS' if report['probes_pass'] else 'FAIL'} (<= {TARGET_PROBE:.0%} each)")


def verdict(r: dict) -> str:
    u, c = r["unseen"], r["choice"]
    return (f"{Path(r['model']).name}: {'PASS' if r['pass'] else 'FAIL'} on the {u['photos']} unseen valB "
            f"photos: {u['called_painting']:.0%} called paintings (target {TARGET_PAINTING:.0%}), "
            f"{u['painting_and_ssim']:.0%} paintings with SSIM >= {TARGET_SSIM} (target {TARGET_BOTH:.0%}), "
            f"SSIM {u['ssim_mean']:.3f}; on the {c['photos']} choice photos {c['called_painting']:.0%} / "
            f"{c['painting_and_ssim']:.0%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="a photo -> painting model file to judge (repeat to compare)")
    parser.add_argument("--data", type=Path, default=DATA, help="vangogh2photo layout (default: %(default)s)")
    parser.add_argument("--clips", type=Path, default=CLIPS, help="real clips for the robustness table")
    parser.add_argument("--out", type=Path, help="folder for the results (default: the cache's "
                        "results/yardstick; copy yardstick.json into benchmarks/results/ to record it)")
    parser.add_argument("--retrain", action="store_true", help="train the judge again")
    args = parser.parse_args(argv)
    if not (args.data / "trainA").is_dir():
        sys.exit(f"error: {args.data} has no trainA/trainB: give --data")
    for model in args.model:
        if not model.is_file():
            sys.exit(f"error: model file {model} does not exist")
    judges, report = cached_judges(args.data, args.clips, args.retrain)
    print(describe(report))
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "judge": report, "models": []}
    photos = load_images(image_paths(args.data / "valB"))
    args.out = args.out or results_dir() / "yardstick"
    args.out.mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(args.model, 1):
        result, outputs, scores = measure(judges, model, photos)
        results["models"].append(result)
        sheet = args.out / f"{i}-{model.stem}-lowest-highest.jpg"
        cv2.imwrite(str(sheet), contact_sheet(photos, outputs, scores)[..., ::-1])
        print(verdict(result), f"(lowest and highest scored: {sheet})")
    path = args.out / "yardstick.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"numbers in {path}")


if __name__ == "__main__":
    main()
