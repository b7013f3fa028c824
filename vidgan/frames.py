"""Pre- and post-processing on the backend's device: uint8 HWC frames <-> model batches.

Frames are RGB uint8 arrays or tensors shaped (H, W, 3) or (N, H, W, 3). Model batches are
float NCHW in [-1, 1], padded by reflection to the model's spatial multiple.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad an NCHW batch on the bottom/right to multiples of `multiple`.

    Returns the padded batch and the original (H, W) for `crop`. Reflection needs the pad to be
    smaller than the side; beyond that (tiny frames, U-Net's multiple of 256) edges are replicated.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
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
        t = t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def normalize(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [-1, 1], on the frames' device."""
    x = frames.permute(0, 3, 1, 2).to(dtype)
    return x.div_(127.5).sub_(1.0)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """NCHW float in [-1, 1] -> NHWC uint8, on the batch's device."""
    y = (x.float() + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an NCHW float batch; antialiased when shrinking so fine texture doesn't alias."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def processing_size(height: int, width: int, target_height: int | None) -> tuple[int, int]:
    """(H, W) at which to run the model: `target_height` tall, aspect kept, even sides."""
    if not target_height or target_height == height:
        return height, width
    w = max(2, round(width * target_height / height / 2) * 2)
    return target_height, w


class Stylizer:
    """uint8 frames in, stylized uint8 frames out, all on the backend's device.

    `height` is the processing height (None: the frames' own); outputs have the input's size
    unless `output_size` (H, W) is given.
    """

    def __init__(self, backend, height: int | None = None, output_size: tuple[int, int] | None = None):
        self.backend = backend
        self.height = height
        self.output_size = output_size

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = as_tensor(frames, self.backend.device)
        h, w = t.shape[1:3]
        x = normalize(t, self.backend.input_dtype)
        x = resize(x, processing_size(h, w, self.height))
        x, size = pad_to_multiple(x, self.backend.multiple)
        y = crop(self.backend(x), size)
        y = resize(y, self.output_size or (h, w))
        return denormalize(y)
