"""Any frame size for generators that need multiples: reflect-pad, run, crop back.

Generators take H and W in multiples of `model.multiple`; this is the one place that pads a
batch up to that (and to MIN_SIDE) and crops the result back, so callers never see the rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def run_padded(model, x: torch.Tensor, multiple: int | None = None) -> torch.Tensor:
    """model(x) for an NCHW batch of any size: padded to the model's multiple, cropped back.
    `multiple` defaults to model.multiple (a generator or a Backend)."""
    padded, size = pad_to_multiple(x, multiple or model.multiple)
    return crop(model(padded), size)
