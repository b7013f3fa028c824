"""How uint8 pixels map to a generator's input range, as each model file records it.

    model value = pixel / scale + offset        pixel = (model value - offset) * scale

vidgan's training writes TRAINING (x / 127.5 - 1: [0, 255] -> [-1, 1]) into every model file;
everything that runs a model file reads the normalization back from it (ModelInfo.normalization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vidgan.core.errors import VidganError


@dataclass(frozen=True)
class Normalization:
    scale: float = 127.5
    offset: float = -1.0

    def as_metadata(self) -> dict:
        return {"scale": self.scale, "offset": self.offset,
                "range": [self.offset, self.offset + 255 / self.scale], "layout": "RGB"}

    @classmethod
    def from_metadata(cls, meta: dict | None, broken: str = "") -> Normalization:
        """The normalization a model file's metadata holds; vidgan's own when it holds none."""
        if not meta:
            return TRAINING
        try:
            norm = cls(float(meta["scale"]), float(meta.get("offset", 0.0)))
        except (KeyError, TypeError, ValueError):
            norm = None
        if norm is None or not (norm.scale > 0 and math.isfinite(norm.scale)
                                and math.isfinite(norm.offset)) or meta.get("layout", "RGB") != "RGB":
            raise VidganError(f"{broken} its normalization {meta} is not an RGB scale and offset")
        return norm

    def to_model(self, pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 pixels (any layout) -> float32 model values, on the pixels' device."""
        t = torch.as_tensor(pixels)
        return t.float().div_(self.scale).add_(self.offset)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model values (any layout) -> uint8 pixels, rounded and saturated."""
        return x.float().sub(self.offset).mul_(self.scale).add_(0.5).clamp_(0, 255).to(torch.uint8)


TRAINING = Normalization()
