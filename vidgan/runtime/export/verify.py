"""How an exported graph or engine is checked against PyTorch FP32: PSNR on photographs."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import torch

from vidgan.core.errors import VidganError
from vidgan.core.images import is_image_name, load_rgb_array, sample_photos, suffix_list
from vidgan.core.normalization import TRAINING, Normalization
from vidgan.runtime.export.onnx import INPUT, OUTPUT
from vidgan.runtime.export.profile import Profile, round_up

ONNX_MIN_PSNR = 45.0
FP16_MIN_PSNR = 35.0


def psnr(a, b, peak_to_peak: float = 2.0) -> float:
    """Worst per-image PSNR in dB between two (N, C, H, W) batches in [-1, 1] (tensors or arrays).

    NaN anywhere gives NaN; identical images give inf.
    """
    a = np.asarray(a.float().cpu() if hasattr(a, "float") else a, dtype=np.float64)
    b = np.asarray(b.float().cpu() if hasattr(b, "float") else b, dtype=np.float64)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    if np.isnan(mse).any():
        return float("nan")
    with np.errstate(divide="ignore"):
        return float(np.min(10 * np.log10(peak_to_peak**2 / mse)))


def sample_images(n: int = 2, size: tuple[int, int] = (256, 256), folder: Path | None = None,
                  normalization: Normalization = TRAINING) -> torch.Tensor:
    """(n, 3, H, W) float32 CPU tensor in the model's range: photographs resized to `size`.

    From `folder` (`vidgan export --photos DIR`), else the built-in sample photographs
    (vidgan.core.images.sample_photos); more than there are photos repeats them mirrored, then
    again.
    """
    if folder is not None:
        photos = [load_rgb_array(path) for path in photo_files(folder)]
    else:
        photos = sample_photos()
    picks = [photos[i % len(photos)] for i in range(n)]
    mirrored = [i // len(photos) % 2 == 1 for i in range(n)]
    small = [cv2.resize(np.ascontiguousarray(p[:, ::-1] if m else p), size[::-1],
                        interpolation=cv2.INTER_AREA) for p, m in zip(picks, mirrored)]
    return normalization.to_model(np.stack(small)).permute(0, 3, 1, 2).contiguous()


def images_source(folder: Path | None = None) -> str:
    """Words for the report: where sample_images takes its images from."""
    return f"photos in {folder}" if folder is not None else "the built-in sample photos"


def photo_files(folder: Path) -> list[Path]:
    """--photos DIR: the images of a folder that holds at least one (checked before any work)."""
    if not folder.is_dir():
        raise VidganError(f"--photos {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if is_image_name(p))
    if not files:
        raise VidganError(f"--photos {folder} holds no {suffix_list()} images")
    return files


def onnx_psnr(onnx_path: Path, reference, images) -> float:
    """PSNR of the ONNX model through onnxruntime (CPU) against `reference` outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run([OUTPUT], {INPUT: images.numpy()})[0]
    return psnr(out, reference)


def torch_reference(generator, images, device: str = "cpu"):
    """FP32 PyTorch outputs (TF32 off) for `images`, on the CPU; `generator` is left as it was."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            return copy.deepcopy(generator).to(device).float()(images.to(device)).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def verify_engine(backend, generator, profile: Profile, images_folder: Path | None = None,
                  normalization: Normalization = TRAINING) -> dict:
    """Run the engine on photos at two shapes in its profile and compare with PyTorch FP32.

    Returns {"psnr_db", "shapes", "images"}; raises VidganError on NaN or PSNR < 35 dB.
    """
    side = round_up(256, backend.multiple)
    small = tuple(min(max(side, lo), hi) for lo, hi in zip(profile.min, profile.max))
    checks = [(min(4, profile.batch), small), (profile.batch, profile.opt)]
    worst, shapes = float("inf"), []
    for batch, size in checks:
        images = sample_images(batch, size, images_folder, normalization)
        reference = torch_reference(generator, images, "cuda")
        x = images.to(backend.device, backend.input_dtype)
        out = backend(x).float().cpu()  # .cpu() waits for the engine
        value = psnr(out, reference)
        shapes.append(list(x.shape))
        if not value >= FP16_MIN_PSNR:  # also catches NaN
            raise VidganError(f"engine verification failed at {list(x.shape)}: PSNR {value:.1f} dB "
                              f"vs PyTorch FP32 (needs {FP16_MIN_PSNR:.0f}); the engine was not kept")
        worst = min(worst, value)
    return {"psnr_db": round(worst, 2), "shapes": shapes, "images": images_source(images_folder)}
