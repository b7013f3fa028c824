"""The Stylizer: a model file behind a backend, built once and handed to every pipeline.

The CLI (or a Python caller) builds it from a model file + backend + device + precision +
processing height + stabilizer; render, stylize, live and demo receive it built, as a diffusers
pipeline receives its unet and scheduler, and never care which backend runs.

    stylizer = Stylizer.build("model.safetensors", backend="auto", height=360, stabilize=0.7)
    stylizer(frames)          # (N, H, W, 3) uint8 -> stylized (N, H, W, 3) uint8, on its device
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidgan.core import modelfile
from vidgan.core.modelfile import ModelInfo
from vidgan.core.normalization import TRAINING
from vidgan.core.padding import crop, run_padded
from vidgan.runtime import frames
from vidgan.runtime.backends import Backend, load_backend
from vidgan.runtime.temporal import Stabilizer


class Stylizer:
    """uint8 frames in, stylized uint8 frames out, all on the backend's device.

    height: the processing height (None: the frames' own). stabilizer: a temporal.Stabilizer
    that each output frame goes through, in call order (None: frame by frame). info: the model
    file's description, for its normalization and memory estimates (None: a bare backend, whose
    model is taken to use vidgan's normalization).
    """

    def __init__(self, backend: Backend, height: int | None = None,
                 stabilizer: Stabilizer | None = None, info: ModelInfo | None = None):
        self.backend, self.height, self.stabilizer, self.info = backend, height, stabilizer, info
        self.norm = info.normalization if info is not None else TRAINING
        self.memory_format = getattr(backend, "memory_format", torch.contiguous_format)

    @classmethod
    def build(cls, model: str | Path | None = None, backend: str = "auto",
              device: str | None = None, precision: str = "auto", height: int | None = None,
              stabilize: float | None = None, shapes=(), **options) -> Stylizer:
        """Load `model` (None: the bundled one) behind `backend` (see load_backend, which takes
        `shapes` and the backend `options`); stabilize: a Stabilizer's strength (None: off)."""
        info = modelfile.read_info(modelfile.resolve(model))
        be = load_backend(info.path, backend, device, precision, shapes=shapes, **options)
        stabilizer = None if stabilize is None else Stabilizer(stabilize, device=be.device)
        return cls(be, height, stabilizer, info)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def processing_size(self, h: int, w: int) -> tuple[int, int]:
        return frames.processing_size(h, w, self.height)

    def check_memory(self, h: int, w: int, batch: int = 1, what: str = "") -> None:
        """VidganError when frames of h x w (before the processing height) would not fit; no
        check for a bare backend, whose model is unknown."""
        if self.info is not None:
            frames.check_memory(*self.processing_size(h, w), self.info.bytes_per_pixel,
                                self.device, batch, what)

    def __call__(self, images: np.ndarray | torch.Tensor,
                 size: tuple[int, int] | None = None) -> torch.Tensor:
        """Stylized (and stabilized) frames at `size` (H, W; None: the input's): a new NHWC
        uint8 tensor on the backend's device."""
        return self.pair(images, size, keep_original=False)[1]

    def pair(self, images: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None,
             keep_original: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(the input at `size`, its stylized frames at `size`), for side by side; the first is
        None unless `keep_original`."""
        t = frames.as_tensor(images, self.device)
        size = size or tuple(t.shape[1:3])
        y = self._stylize(t, size)
        original = None
        if keep_original or self.stabilizer is not None:
            original = frames.resize_frames(t, size)
        if self.stabilizer is not None:
            for i in range(len(y)):
                y[i] = self.stabilizer(original[i], y[i])
        return original, y

    def _stylize(self, t: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        backend, norm = self.backend, self.norm
        size = self.processing_size(*t.shape[1:3])
        if t.device.type == "cpu":
            # Resize and pad in uint8 before normalizing; back to uint8 before resizing up.
            t = frames.pad_frames(frames.resize_frames(t, size), backend.multiple)
            y = crop(backend(frames.normalize(t, backend.input_dtype, norm=norm)), size)
            return frames.resize_frames(frames.denormalize(y, norm), out_size)
        x = frames.resize(frames.normalize(t, backend.input_dtype, self.memory_format, norm), size)
        y = run_padded(backend, x)
        return frames.denormalize(frames.resize(y, out_size), norm)
