"""Pre- and post-processing on the backend's device: uint8 HWC frames <-> model batches.

Frames are RGB uint8 arrays or tensors shaped (H, W, 3) or (N, H, W, 3). Model batches are
float NCHW in the model's range (its file's normalization; [-1, 1] for vidgan's), padded by
reflection to the model's spatial multiple (vidgan.core.padding).

This is the per-frame hot path. On CUDA it is a handful of torch kernels with no host sync. On
the CPU, OpenCV does the work on uint8 frames: each step is one vectorized pass (normalize and
HWC -> NCHW together, resizing and padding in uint8, which is 4x less memory than float), and
it stays fast when the cores are shared, where torch's small elementwise kernels slow down
several-fold.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidgan.core.errors import VidganError
from vidgan.core.normalization import TRAINING, Normalization
from vidgan.core.padding import MIN_SIDE, padding


def as_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N,)H,W,3 frames as an NHWC uint8 tensor on `device` (pinned, async from the CPU).
    A read-only array (np.asarray of a PIL image) is copied: torch warns on sharing one."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.require(frames, requirements="W"))
    t = frames.unsqueeze(0) if frames.dim() == 3 else frames
    if device.type == "cuda" and t.device.type == "cpu":
        if not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)
    return t.to(device)


def normalize(
    frames: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    norm: Normalization = TRAINING,
) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in the model's range (`norm`) of `dtype` and `memory_format`,
    on the frames' device."""
    if frames.device.type == "cpu" and memory_format == torch.contiguous_format:
        # one plane at a time straight into the batch: 3.5x faster than cv2.dnn.blobFromImages
        n, h, w, _ = frames.shape
        out = np.empty((n, 3, h, w), np.float32)
        for src, planes in zip(_arrays(frames), out):
            for plane, dst in zip(cv2.split(src), planes):
                cv2.addWeighted(plane, 1 / norm.scale, plane, 0, norm.offset, dst=dst,
                                dtype=cv2.CV_32F)
        return torch.from_numpy(out).to(dtype)
    nchw = frames.permute(0, 3, 1, 2)
    x = torch.empty(nchw.shape, dtype=dtype, device=frames.device, memory_format=memory_format)
    x.copy_(nchw)  # cast and layout change in one pass
    return x.mul_(1 / norm.scale).add_(norm.offset)


def denormalize(x: torch.Tensor, norm: Normalization = TRAINING) -> torch.Tensor:
    """NCHW float in the model's range (`norm`) -> NHWC uint8 (rounded, saturated), on the
    batch's device."""
    n, _, h, w = x.shape
    out = torch.empty((n, h, w, 3), dtype=torch.uint8, device=x.device)
    shift = -norm.offset * norm.scale  # pixel = x * scale + shift
    if x.device.type == "cpu":
        x = x.detach().float().numpy()
        for i, frame in enumerate(out.numpy()):
            planes = [cv2.addWeighted(p, norm.scale, p, 0, shift, dtype=cv2.CV_8U) for p in x[i]]
            cv2.merge(planes, dst=frame)
        return out
    # x is the backend's output: scale into a new tensor (never in place), in fp32 so that
    # rounding is exact; +0.5 because the uint8 cast below truncates.
    y = x.mul(norm.scale) if x.dtype == torch.float32 else x.float().mul_(norm.scale)
    out.permute(0, 3, 1, 2).copy_(y.add_(shift + 0.5).clamp_(0, 255))
    return out


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an NCHW float batch; antialiased when shrinking so fine texture doesn't alias."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize NHWC uint8 frames to `size` (H, W); area-averaged when shrinking, on their device."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    if frames.device.type != "cpu":
        return denormalize(resize(normalize(frames), size))
    shrink = size[0] < frames.shape[1]
    mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = torch.empty((len(frames), *size, 3), dtype=torch.uint8)
    for src, dst in zip(_arrays(frames), out.numpy()):
        cv2.resize(src, (size[1], size[0]), dst=dst, interpolation=mode)
    return out


def side_by_side(original, stylized):
    """Before | after: two (N,)H,W,C images (arrays or tensors) joined along their width."""
    if isinstance(original, np.ndarray):
        return np.concatenate([original, stylized], axis=-2)
    return torch.cat([original, stylized], dim=-2)


def processing_size(height: int, width: int, target_height: int | None) -> tuple[int, int]:
    """(H, W) at which to run the model: `target_height` tall, aspect kept, even sides."""
    if not target_height or target_height == height:
        return height, width
    w = max(2, round(width * target_height / height / 2) * 2)
    return target_height, w


def pad_frames(frames: torch.Tensor, multiple: int) -> torch.Tensor:
    """CPU NHWC uint8 frames padded on the bottom/right as vidgan.core.padding pads batches
    (the same amounts, by reflection, edges replicated where reflection can't reach)."""
    h, w = frames.shape[1:3]
    ph, pw = padding(h, w, multiple)
    if ph == 0 and pw == 0:
        return frames
    mode = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE
    out = torch.empty((len(frames), h + ph, w + pw, 3), dtype=torch.uint8)
    for src, dst in zip(_arrays(frames), out.numpy()):
        cv2.copyMakeBorder(src, 0, ph, 0, pw, mode, dst=dst)
    return out


def _arrays(frames: torch.Tensor) -> list[np.ndarray]:
    """CPU NHWC uint8 frames as HWC numpy views (copied only if a frame's rows are strided)."""
    return [np.ascontiguousarray(f) for f in frames.numpy()]


def check_memory(height: int, width: int, bytes_per_pixel: float, device: torch.device,
                 batch: int = 1, what: str = "") -> None:
    """VidganError, before anything is allocated, when a model call on `batch` frames of
    height x width (the processing size) would not fit in the device's free memory.

    bytes_per_pixel: the generator's activations per pixel (ModelInfo.bytes_per_pixel); the
    frames themselves (uint8 in and out, float32 normalized) are added. The message names the
    --height (or, for a batch, the --batch-size) that fits.
    """
    per_frame = height * width * (bytes_per_pixel + 3 * (1 + 4 + 1))
    need = batch * per_frame
    free = available_memory(device)
    if free is None or need <= 0.8 * free:  # the rest: weights, the decoder, the encoder, Python
        return
    if batch > 1 and per_frame <= 0.8 * free:
        advice = f"use --batch-size {int(0.8 * free // per_frame)}"
    else:
        fit = int(height * math.sqrt(0.8 * free / per_frame)) // 16 * 16
        advice = f"use --height {fit}" if fit >= MIN_SIDE else "use a smaller input"
    raise VidganError(f"{what or 'a frame'} at {width}x{height} px needs ~{need / 1e9:.1f} GB of "
                      f"{device.type.upper()} memory and {free / 1e9:.1f} GB are free; {advice}")


def available_memory(device: torch.device) -> int | None:
    """Bytes the process can still allocate on `device`, or None when it can't be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    free = _meminfo_available()
    limit = _cgroup_room()
    known = [v for v in (free, limit) if v is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_room() -> int | None:
    """What a container's memory limit (cgroup v2) leaves; None when there is no limit."""
    root = "/sys/fs/cgroup/"
    try:
        with open(root + "memory.max") as f:
            limit = f.read().strip()
        with open(root + "memory.current") as f:
            current = int(f.read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - current)
