"""The standalone model file: a generator's weights in safetensors, its description in metadata.

The metadata is the contract between training and everything downstream: render, live, export
and eval rebuild the generator from it with no architecture flags.

    arch           {"name": "fast", "kwargs": {"ngf": 32, "n_blocks": 6}}
    multiple       the spatial multiple H and W must have ("4")
    normalization  how pixels map to the model's range: x / 127.5 - 1
    direction      "photo->painting"
    config         the resolved training config (JSON)
    training       epochs, steps, time and final losses (JSON)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vidgan import models
from vidgan.errors import VidganError

FORMAT = "vidgan-model/1"
NORMALIZATION = {"scale": 127.5, "offset": -1.0, "range": [-1.0, 1.0], "layout": "RGB"}
WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = WEIGHTS_DIR / "vangogh-fast.safetensors"  # --quality best: the CycleGAN generator
REALTIME = WEIGHTS_DIR / "vangogh-realtime.safetensors"  # --quality fast: its distilled student
QUALITIES = ("fast", "best")


@dataclass
class ModelInfo:
    """What a model file says about its generator."""

    arch: str
    kwargs: dict
    multiple: int
    direction: str = "photo->painting"
    config: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    path: Path | None = None

    def build(self) -> nn.Module:
        return models.build(self.arch, **self.kwargs)


def save_model(
    path: str | Path,
    generator: nn.Module,
    arch: str,
    kwargs: dict,
    *,
    config: dict | None = None,
    training: dict | None = None,
    direction: str = "photo->painting",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the generator and its description atomically (temporary name, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "arch": json.dumps({"name": arch, "kwargs": kwargs}),
        "multiple": str(generator.multiple),
        "normalization": json.dumps(NORMALIZATION),
        "direction": direction,
        "config": json.dumps(config or {}, default=str),
        "training": json.dumps(training or {}, default=str),
    }
    tmp = path.with_name(path.name + ".partial")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_info(path: str | Path) -> ModelInfo:
    """Read a model file's description without loading its weights."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
        raise VidganError(f"{path} is not a safetensors model file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise VidganError(f"{path} is not a vidgan model file (no '{FORMAT}' metadata)")
    arch = json.loads(meta["arch"])
    return ModelInfo(
        arch=arch["name"],
        kwargs=arch["kwargs"],
        multiple=int(meta["multiple"]),
        direction=meta.get("direction", "photo->painting"),
        config=json.loads(meta.get("config", "{}")),
        training=json.loads(meta.get("training", "{}")),
        path=path,
    )


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild the generator described by a model file; float32, eval mode, on `device`."""
    from safetensors.torch import load_file

    info = read_info(resolve(path))
    generator = info.build()
    state = load_file(str(info.path))
    generator.load_state_dict({k: v.float() for k, v in state.items()})
    return generator.to(device).eval(), info


def resolve(path: str | Path | None, quality: str = "best") -> Path:
    """The given model file, or the bundled one of `quality` ("fast" or "best") when None."""
    if path is not None:
        return _existing(path)
    bundled = bundled_model(quality)
    if not bundled.exists():
        raise VidganError(
            f"the bundled model {bundled.name} is missing; pass --model with a file from "
            "`vidgan train` or `vidgan distill`, or reinstall vidgan"
        )
    return bundled


def bundled_model(quality: str) -> Path:
    """The bundled model file of a --quality value."""
    if quality not in QUALITIES:
        raise VidganError(f"--quality must be fast or best, not {quality!r}")
    return REALTIME if quality == "fast" else BUNDLED


def choose(path: str | Path | None, quality: str | None, device: torch.device,
           realtime: bool) -> Path:
    """The model file a command runs: `path` when given, else the bundled model of `quality`.

    With neither, commands that must keep up with a source (`realtime`: live, demo) take the
    fast student on a CPU, where the best model runs about 1-3 fps; everything else takes best.
    """
    if path is not None and quality is not None:
        raise VidganError("--quality picks one of the bundled models: drop it when giving --model")
    if quality is None:
        quality = "fast" if realtime and device.type == "cpu" else "best"
    return resolve(path, quality)


def file_hash(path: str | Path) -> str:
    """Short hash of a model file's weights and metadata: keys caches (ONNX, engines) to them.

    The header is hashed with sorted keys: safetensors writes metadata in no fixed order, so the
    same model saved twice gives different bytes but the same hash.
    """
    raw = Path(path).read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + size]), sort_keys=True).encode()
    return hashlib.sha256(header + raw[8 + size :]).hexdigest()[:16]


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VidganError(f"model file {path} does not exist")
    return path
