"""Evaluation: held-out losses and grids for a model, temporal stability for a rendered video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vidgan.core.errors import VidganError

# --- held-out losses of a model: `vidgan eval --model M --data DIR` ---------------------------

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
    import time

    import torch

    from vidgan.core import modelfile

    if not photos:
        raise VidganError("no photos to evaluate on")
    g_path = modelfile.resolve(model)
    f_path = inverse_path(g_path, inverse)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
    from vidgan.train import data as datasets

    folder = Path(data)
    if not folder.is_dir():
        raise VidganError(f"data folder {folder} does not exist")
    paintings_dir, photos_dir = datasets.find_val_domains(folder)
    if paintings_dir is None and photos_dir is None:
        photos_dir = folder
    if photos_dir is None:
        raise VidganError(f"{folder} has held-out paintings but no photos (valB or testB)")
    photos = datasets.list_images(photos_dir)[:limit]
    paintings = datasets.list_images(paintings_dir)[:limit] if paintings_dir else []
    return photos, paintings


def inverse_path(model: Path, inverse: str | Path | None = None) -> Path | None:
    """F's model file: `inverse` if given, else `<stem>-F.safetensors` beside G if it exists."""
    from vidgan.core import modelfile

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
    import torch

    sums: dict[str, float] = {}
    shown = []
    for i in range(0, len(paths), EVAL_BATCH):
        a = _load_square(paths[i:i + EVAL_BATCH]).to(device)
        with torch.inference_mode():
            moved = _run(there, a) if there is not None else None
            found = {"change": moved, "idt": _run(back, a) if back is not None else None,
                     "cycle": _run(back, moved) if back is not None and moved is not None else None}
        for name, b in found.items():
            if b is not None:
                key = f"{name}_{domain}"
                sums[key] = sums.get(key, 0.0) + (b - a).abs().flatten(1).mean(1).sum().item()
        if moved is not None:
            shown += [(a[j].cpu(), moved[j].cpu()) for j in range(min(len(a), keep - len(shown)))]
        counter.add(len(a))
    return {k: round(v / len(paths), 5) for k, v in sorted(sums.items())}, shown


def _run(model, x):
    """A generator on an NCHW batch in [-1, 1] of any size (padded to its multiple, cropped back)."""
    from vidgan.runtime import frames

    padded, size = frames.pad_to_multiple(x, model.multiple)
    return frames.crop(model(padded), size)


def _load_square(paths: list[Path], size: int = EVAL_SIZE):
    """Images center-cropped and resized to size x size: an NCHW float batch in [-1, 1]."""
    import torch
    from PIL import ImageOps

    from vidgan.train import data

    return torch.stack([data.to_tensor(ImageOps.fit(data.load_rgb(p), (size, size))) for p in paths])


def _save_pairs(pairs: list, path: Path, columns: int = 2) -> Path | None:
    """A PNG grid of (before | after) CHW pairs in [-1, 1], `columns` pairs a row; None if empty."""
    import io

    import torch
    from PIL import Image

    from vidgan.runtime import frames
    from vidgan.core.files import write_atomic

    if not pairs:
        return None
    cells = [torch.cat(pair, dim=2) for pair in pairs]
    cells += [torch.full_like(cells[0], 1.0)] * (-len(cells) % columns)  # white filler
    rows = [torch.cat(cells[i:i + columns], dim=2) for i in range(0, len(cells), columns)]
    image = frames.denormalize(torch.cat(rows, dim=1).unsqueeze(0))[0].numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())


def _write_json(obj: dict, path: Path) -> Path:
    import json

    from vidgan.core.files import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


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
    from vidgan.core.errors import Interrupted
    from vidgan.pipelines.render import FrameProgress

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VidganError(f"--out {out} is a file; give a folder for grid.png and eval.json")
    existing = [p for p in (out / "grid.png", out / "eval.json") if p.exists()]
    if existing and not overwrite:
        raise VidganError(f"{existing[0]} already exists; pass --overwrite to replace it, or "
                          "give another --out")
    photos, paintings = held_out_images(data, limit)
    bar = FrameProgress("eval", len(photos) + len(paintings), unit="images")
    try:
        with bar:
            report = evaluate_model(model, photos, paintings, inverse=inverse, out=out,
                                    progress=lambda done, _: bar.advance(done - bar.count))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {bar.count} of {bar.total} images: nothing "
                          f"written to {out} (grid.png and eval.json come at the end)") from None
    return format_eval(report)


def run_video_eval(video: str | Path, rendered: str | Path | None,
                   baseline: str | Path | None = None) -> str:
    """`vidgan eval --video IN --rendered OUT`: warping errors with a progress bar, as text."""
    from vidgan.pipelines.render import FrameProgress
    from vidgan.runtime.video import probe

    if rendered is None:
        raise VidganError("--video needs --rendered OUT: the stylized rendering of the same clip")
    with FrameProgress("stability", probe(video).frames) as bar:
        report = video_stability(video, rendered, baseline=baseline,
                                 progress=lambda done, _: bar.advance(done - bar.count))
    return format_stability(report)


# --- temporal stability of a rendering: `vidgan eval --video IN --rendered OUT` ------------


def video_stability(video: str | Path, rendered: str | Path, *, height: int | None = 360,
                    baseline: str | Path | None = None, moving_px: float = 2.0,
                    progress: Callable[[int, int | None], None] | None = None) -> dict:
    """Temporal stability of a rendering of `video`: warping error as in Lai et al. 2018.

    For each pair of consecutive frames, Farneback optical flow on the INPUT frames (t -> t-1
    and t-1 -> t) and Ruder et al.'s forward-backward check give the pixels of frame t that are
    visible in frame t-1; the warping error of a clip is the mean over frames of the mean squared
    difference (RGB scaled to 0..1, over channels and those pixels) between frame t and frame t-1
    warped to t. The input's own error is the floor a rendering is compared with.

    height: evaluate at this height (aspect kept; None = the rendered size): Farneback costs
        about 0.1 s a direction at 640x360 on a 2-core CPU, four times that at 720p.
    baseline: another rendering of `video` (e.g. without --stabilize): adds its warping error,
        the relative reduction, and the SSIM between the two renderings on moving pixels (input
        flow above `moving_px` px at the evaluated size) and on still ones: a low moving-region
        SSIM beside a high still-region one is ghosting.
    progress: called as progress(frames_done, frames_total_or_None).
    Raises VidganError when a clip is unreadable or the clips' frame counts differ.
    """
    paths = {"input": Path(video), "rendered": Path(rendered)}
    if baseline is not None:
        paths["baseline"] = Path(baseline)
    total = _same_frame_counts(paths)
    sums = dict.fromkeys([*paths, "non_occluded"], 0.0)
    ssim: dict[str, list[float]] = {"moving": [], "still": []}
    prev, size = None, None
    for i, frames in enumerate(_decode_in_lockstep(paths)):
        size = size or _stability_size(frames["rendered"].shape, height)
        cur = {k: _resize_frame(f, size) for k, f in frames.items()}
        if prev is not None:
            _add_pair(prev, cur, sums, ssim if baseline is not None else None, moving_px)
        prev = cur
        if progress:
            progress(i + 1, total)
    pairs = i if prev is not None else 0
    if pairs == 0:
        raise VidganError(f"{paths['input']} has fewer than 2 frames: nothing to compare")
    return _stability_report(paths, {k: v / pairs for k, v in sums.items()}, ssim, pairs, size,
                             moving_px)


def _add_pair(prev: dict, cur: dict, sums: dict, ssim: dict | None, moving_px: float) -> None:
    """Accumulate one frame pair's warping errors (and region SSIMs when `ssim` is given)."""
    import numpy as np

    flow, ok = _input_flow(prev["input"], cur["input"])
    sums["non_occluded"] += ok.mean()
    for k, frame in prev.items():
        sums[k] += _warping_error(frame, cur[k], flow, ok)
    if ssim is not None:
        moving = np.hypot(flow[..., 0], flow[..., 1]) > moving_px
        _region_ssim(cur["rendered"], cur["baseline"], moving, ssim)


def _stability_report(paths: dict, means: dict, ssim: dict, pairs: int, size: tuple,
                      moving_px: float) -> dict:
    report = {
        "metric": "warping error (Lai et al. 2018): mean squared RGB difference (0..1 scale) "
                  "between frame t and frame t-1 warped by the input's optical flow (Farneback),"
                  " over non-occluded pixels (forward-backward check)",
        "input": str(paths["input"]),
        "rendered": str(paths["rendered"]),
        "frames": pairs + 1,
        "size": [size[1], size[0]],
        "non_occluded": means["non_occluded"],
        "warping_error_input": means["input"],
        "warping_error_rendered": means["rendered"],
        "rendered_to_input": _ratio(means["rendered"], means["input"]),
    }
    if "baseline" in paths:
        report |= {
            "baseline": str(paths["baseline"]),
            "warping_error_baseline": means["baseline"],
            "reduction_vs_baseline": 1.0 - _ratio(means["rendered"], means["baseline"]),
            "ssim_to_baseline_moving": _mean(ssim["moving"]),
            "ssim_to_baseline_still": _mean(ssim["still"]),
            "moving_px": moving_px,
        }
    return report


def format_stability(report: dict) -> str:
    """A few aligned lines for a terminal from `video_stability`'s report."""
    w, h = report["size"]
    head = (f"temporal stability of {report['rendered']}: {report['frames']} frames at {w}x{h}, "
            f"{report['non_occluded']:.0%} of pixels non-occluded")
    floor = f"  warping error, input (the floor)  {report['warping_error_input']:.5f}"
    rendered = (f"  warping error, rendered           {report['warping_error_rendered']:.5f}"
                f"  ({report['rendered_to_input']:.2f}x the input's)")
    lines = [head, floor, rendered]
    if "baseline" in report:
        change = report["reduction_vs_baseline"]
        lines.append(f"  warping error, baseline           {report['warping_error_baseline']:.5f}"
                     f"  (rendered is {abs(change):.0%} {'lower' if change >= 0 else 'higher'})")
        lines.append(f"  SSIM rendered vs baseline         moving pixels "
                     f"{report['ssim_to_baseline_moving']:.3f}, still pixels "
                     f"{report['ssim_to_baseline_still']:.3f}")
    lines.append("  (mean squared RGB difference on a 0..1 scale between frame t and frame t-1 "
                 "warped by the input's optical flow)")
    return "\n".join(lines)


def _same_frame_counts(paths: dict[str, Path]) -> int | None:
    """The clips' common frame count from their containers (None if unknown); refuses a mismatch."""
    counts = {k: _video_frame_count(p) for k, p in paths.items()}
    known = {n for n in counts.values() if n}
    if len(known) > 1:
        raise _frame_count_error(paths, counts)
    return next(iter(known), None)


def _video_frame_count(path: Path) -> int:
    """The container's frame count (0 when it doesn't say); a missing file is a user error."""
    import av

    if not path.is_file():
        raise VidganError(f"{path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VidganError(f"{path} has no video stream")
            return container.streams.video[0].frames
    except av.FFmpegError as exc:
        raise VidganError(f"cannot read {path}: {exc}") from None


def _frame_count_error(paths: dict[str, Path], counts: dict) -> VidganError:
    listed = ", ".join(f"{p} has {counts[k]}" for k, p in paths.items())
    return VidganError(f"frame counts differ ({listed}): compare a video with a rendering of "
                       "all of its frames")


def _decode_in_lockstep(paths: dict[str, Path]):
    """Yield {name: (H, W, 3) uint8 RGB} for each frame index, decoding the clips together."""
    import itertools

    import av

    containers = {k: av.open(str(p)) for k, p in paths.items()}
    try:
        streams = {}
        for k, c in containers.items():
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            streams[k] = (f.to_ndarray(format="rgb24") for f in c.decode(stream))
        for done, frames in enumerate(itertools.zip_longest(*streams.values())):
            named = dict(zip(streams, frames, strict=True))
            if any(f is None for f in frames):
                got = {k: done if f is None else f"more than {done}" for k, f in named.items()}
                raise _frame_count_error(paths, got)
            yield named
    finally:
        for c in containers.values():
            c.close()


def _stability_size(shape: tuple, height: int | None) -> tuple[int, int]:
    h, w = shape[:2]
    if not height or height >= h:
        return h, w
    return height, max(2, round(w * height / h))


def _resize_frame(frame, size: tuple[int, int]):
    import cv2

    if frame.shape[:2] == size:
        return frame
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _input_flow(prev, cur):
    """Backward Farneback flow (t -> t-1, px) on the input frames and its non-occlusion mask."""
    import cv2

    from vidgan.runtime.temporal import consistency_mask

    g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    params = (None, 0.5, 3, 15, 3, 5, 1.2, 0)
    backward = cv2.calcOpticalFlowFarneback(g1, g0, *params)
    forward = cv2.calcOpticalFlowFarneback(g0, g1, *params)
    return backward, consistency_mask(backward, forward)


def _warping_error(prev, cur, flow, ok) -> float:
    """Mean over non-occluded pixels and channels of (cur - prev warped to cur)^2, RGB in 0..1."""
    import cv2
    import numpy as np

    from vidgan.runtime.temporal import sample_maps

    if not ok.any():
        return 0.0
    map_x, map_y = sample_maps(flow)
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = (cur[ok].astype(np.float32) - warped[ok]) / 255.0
    return float((diff**2).mean())


def _region_ssim(a, b, moving, out: dict[str, list[float]]) -> None:
    """Append the mean SSIM of frames `a` vs `b` over the moving and over the still pixels."""
    from skimage.metrics import structural_similarity

    _, ssim = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
    ssim = ssim.mean(axis=2)
    for name, region in (("moving", moving), ("still", ~moving)):
        if region.any():
            out[name].append(float(ssim[region].mean()))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
