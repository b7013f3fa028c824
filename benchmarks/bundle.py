"""Bundling a training run's G and F into vidgan/weights/ as FP16 model files (model_card.py
writes their card)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageOps

from vidgan.core import modelfile
from vidgan.train import data

MAX_BUNDLE_BYTES = 10 * 1000 * 1000


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def bundled_names() -> tuple[str, str]:
    g = modelfile.BUNDLED.name
    return g, f"{Path(g).stem}-F{Path(g).suffix}"


def bundle(run: Path, weights: Path = modelfile.WEIGHTS_DIR) -> list[Path]:
    """RUN/model.safetensors (G) and model-F.safetensors (F) as FP16 files in `weights`.

    Metadata (architecture, recipe, training summary) is kept; refuses a pair over 10 MB.
    """
    written = []
    for src, name in zip((run / "model.safetensors", run / "model-F.safetensors"), bundled_names()):
        if not src.is_file():
            fail(f"{src} does not exist: bundle a finished run (or `vidgan train --export-only CKPT`)")
        model, info = modelfile.load_model(src)
        written.append(modelfile.save_model(
            weights / name, model, info.arch, info.kwargs, config=info.config, training=info.training,
            direction=info.direction, dtype=torch.float16))
    size = sum(p.stat().st_size for p in written)
    if size > MAX_BUNDLE_BYTES:
        for p in written:
            p.unlink()
        fail(f"the FP16 pair is {size / 1e6:.1f} MB, over the 10 MB limit: choose a smaller generator")
    print(f"bundled {', '.join(str(p) for p in written)} ({size / 1e6:.1f} MB together)")
    return written


@torch.no_grad()
def fp16_error(fp32: Path, fp16: Path, image: Path | None) -> float:
    """Largest |G32(x) - G16(x)| (both run in float32, [-1, 1] units) on one 256 px image."""
    a, b = modelfile.load_model(fp32)[0], modelfile.load_model(fp16)[0]
    if image is not None:
        x = data.to_tensor(ImageOps.fit(Image.open(image).convert("RGB"), (256, 256)))[None]
    else:
        x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return float((a(x) - b(x)).abs().max())
