"""`vidgan eval --video IN --rendered OUT`: how much a rendering flickers, as the warping error
of Lai et al. 2018 against the input's own."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from vidgan.core.errors import VidganError
from vidgan.core.progress import Progress
from vidgan.runtime.temporal import consistency_mask, sample_maps
from vidgan.runtime.video import probe


def run_video_eval(video: str | Path, rendered: str | Path | None,
                   baseline: str | Path | None = None) -> str:
    """`vidgan eval --video IN --rendered OUT`: warping errors with a progress bar, as text."""
    if rendered is None:
        raise VidganError("--video needs --rendered OUT: the stylized rendering of the same clip")
    with Progress("stability", probe(video).frames) as bar:
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
    if frame.shape[:2] == size:
        return frame
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _input_flow(prev, cur):
    """Backward Farneback flow (t -> t-1, px) on the input frames and its non-occlusion mask."""

    g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    params = (None, 0.5, 3, 15, 3, 5, 1.2, 0)
    backward = cv2.calcOpticalFlowFarneback(g1, g0, *params)
    forward = cv2.calcOpticalFlowFarneback(g0, g1, *params)
    return backward, consistency_mask(backward, forward)


def _warping_error(prev, cur, flow, ok) -> float:
    """Mean over non-occluded pixels and channels of (cur - prev warped to cur)^2, RGB in 0..1."""

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
