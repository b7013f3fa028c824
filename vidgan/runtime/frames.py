"""Pre- and post-processing on the backend's device: uint8 HWC frames <-> model batches.

Frames are RGB uint8 arrays or tensors shaped (H, W, 3) or (N, H, W, 3). Model batches are
float NCHW in [-1, 1], padded by reflection to the model's spatial multiple.

This is the per-frame hot path. On CUDA it is a handful of torch kernels with no host sync. On
the CPU, OpenCV does the work on uint8 frames: each step is one vectorized pass (normalize and
HWC -> NCHW together, resizing and padding in uint8, which is 4x less memory than float), and
it stays fast when the cores are shared, where torch's small elementwise kernels slow down
several-fold.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vidgan.core.errors import VidganError

SCALE = 127.5  # x / SCALE - 1 maps uint8 [0, 255] to [-1, 1] (modelfile.NORMALIZATION)
# The generators' reflection padding needs sides of a few pixels after their two stride-2
# downsamplings: smaller frames (a 3x2 image, a panorama at a low --height) are padded up to this.
MIN_SIDE = 16


def padding(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Rows and columns to add below and right: up to multiples of `multiple`, at least MIN_SIDE."""
    def target(side: int) -> int:
        return max(-(-side // multiple), -(-MIN_SIDE // multiple)) * multiple

    return target(h) - h, target(w) - w


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad an NCHW batch on the bottom/right to multiples of `multiple` (see `padding`).

    Returns the padded batch and the original (H, W) for `crop`. Reflection needs the pad to be
    smaller than the side; beyond that (tiny frames, U-Net's multiple of 256) edges are replicated.
    """
    h, w = x.shape[-2:]
    ph, pw = padding(h, w, multiple)
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


def as_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N,)H,W,3 frames as an NHWC uint8 tensor on `device` (pinned, async from the CPU)."""
    t = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if device.type == "cuda" and t.device.type == "cpu":
        if not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)
    return t.to(device)


def normalize(
    frames: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [-1, 1] of `dtype` and `memory_format`, on the frames' device."""
    if frames.device.type == "cpu" and memory_format == torch.contiguous_format:
        import cv2

        # one plane at a time straight into the batch: 3.5x faster than cv2.dnn.blobFromImages
        n, h, w, _ = frames.shape
        out = np.empty((n, 3, h, w), np.float32)
        for src, planes in zip(_arrays(frames), out):
            for plane, dst in zip(cv2.split(src), planes):
                cv2.addWeighted(plane, 1 / SCALE, plane, 0, -1.0, dst=dst, dtype=cv2.CV_32F)
        return torch.from_numpy(out).to(dtype)
    nchw = frames.permute(0, 3, 1, 2)
    x = torch.empty(nchw.shape, dtype=dtype, device=frames.device, memory_format=memory_format)
    x.copy_(nchw)  # cast and layout change in one pass
    return x.mul_(1 / SCALE).sub_(1.0)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """NCHW float in [-1, 1] -> NHWC uint8 (rounded, saturated), on the batch's device."""
    n, _, h, w = x.shape
    out = torch.empty((n, h, w, 3), dtype=torch.uint8, device=x.device)
    if x.device.type == "cpu":
        import cv2

        x = x.detach().float().numpy()
        for i, frame in enumerate(out.numpy()):
            planes = [cv2.addWeighted(p, SCALE, p, 0, SCALE, dtype=cv2.CV_8U) for p in x[i]]
            cv2.merge(planes, dst=frame)
        return out
    # x is the backend's output: scale into a new tensor (never in place), in fp32 so that
    # rounding is exact; +0.5 because the uint8 cast below truncates.
    y = x.mul(SCALE) if x.dtype == torch.float32 else x.float().mul_(SCALE)
    out.permute(0, 3, 1, 2).copy_(y.add_(SCALE + 0.5).clamp_(0, 255))
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
    import cv2

    shrink = size[0] < frames.shape[1]
    mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = torch.empty((len(frames), *size, 3), dtype=torch.uint8)
    for src, dst in zip(_arrays(frames), out.numpy()):
        cv2.resize(src, (size[1], size[0]), dst=dst, interpolation=mode)
    return out


def processing_size(height: int, width: int, target_height: int | None) -> tuple[int, int]:
    """(H, W) at which to run the model: `target_height` tall, aspect kept, even sides."""
    if not target_height or target_height == height:
        return height, width
    w = max(2, round(width * target_height / height / 2) * 2)
    return target_height, w


class Stylizer:
    """uint8 frames in, stylized uint8 frames out, all on the backend's device.

    `height` is the processing height (None: the frames' own); outputs have the input's size
    unless `output_size` (H, W) is given. Returns a new NHWC uint8 tensor on `backend.device`.
    """

    def __init__(self, backend, height: int | None = None,
                 output_size: tuple[int, int] | None = None):
        self.backend = backend
        self.height = height
        self.output_size = output_size
        self.memory_format = getattr(backend, "memory_format", torch.contiguous_format)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = as_tensor(frames, self.backend.device)
        h, w = t.shape[1:3]
        size = processing_size(h, w, self.height)
        out_size = self.output_size or (h, w)
        if t.device.type == "cpu":
            # Resize and pad in uint8 before normalizing; back to uint8 before resizing up.
            t = _pad_frames(resize_frames(t, size), self.backend.multiple)
            y = crop(self.backend(normalize(t, self.backend.input_dtype)), size)
            return resize_frames(denormalize(y), out_size)
        x = resize(normalize(t, self.backend.input_dtype, self.memory_format), size)
        x, _ = pad_to_multiple(x, self.backend.multiple)
        y = crop(self.backend(x), size)
        return denormalize(resize(y, out_size))


def _pad_frames(frames: torch.Tensor, multiple: int) -> torch.Tensor:
    """CPU NHWC uint8 frames padded on the bottom/right like `pad_to_multiple` pads batches."""
    import cv2

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
