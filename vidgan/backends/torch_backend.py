"""PyTorch eager inference: CPU with all cores, or CUDA in fp16 with channels_last."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vidgan import modelfile


class TorchBackend:
    def __init__(self, generator: torch.nn.Module, multiple: int, device: torch.device, precision: str = "fp32"):
        if device.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        self.device = device
        self.multiple = multiple
        self.input_dtype = torch.float16 if precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.model = generator.to(device, self.input_dtype, memory_format=self.memory_format).eval()
        self.name = f"torch-{device.type}-{precision}"

    @classmethod
    def from_file(cls, path: str | Path | None, device: torch.device, precision: str) -> "TorchBackend":
        generator, info = modelfile.load_model(path)
        return cls(generator, info.multiple, device, precision)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))
