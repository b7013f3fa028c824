"""The standalone model file: a generator's weights in safetensors, its description in metadata.

The metadata is the contract between training and everything downstream: render, live, export
and eval rebuild the generator from it with no architecture flags.

    arch           {"name": "fast", "kwargs": {"ngf": 32, "n_blocks": 6}}
    multiple       the spatial multiple H and W must have ("4")
    normalization  how pixels map to the model's range: x / 127.5 - 1 (read back by runners)
    direction      "photo->painting"
    config         the recipe it was trained with (JSON, see recipe_of): {"version": 2,
                   "recipe": {...}}; files from before version 2 hold every field, flat
    training       epochs, steps, time and final losses (JSON)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from vidgan.core import models
from vidgan.core.errors import VidganError
from vidgan.core.files import write_atomic
from vidgan.core.normalization import TRAINING, Normalization

FORMAT = "vidgan-model/1"
WEIGHTS_DIR = Path(str(resources.files("vidgan") / "weights"))  # package data
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
    normalization: Normalization = TRAINING

    @property
    def recipe(self) -> dict:
        """The recipe fields the generator was trained with (see recipe_of)."""
        return recipe_of(self.config)

    def build(self) -> nn.Module:
        return models.build(self.arch, **self.kwargs)

    @cached_property
    def bytes_per_pixel(self) -> float:
        """Activation memory of the generator per input pixel (vidgan.runtime.frames.check_memory).
        Cached: `stylize` checks every image, and building the generator each time made a signal
        likelier to land inside torch's device context and break it."""
        side = -(-64 // self.multiple) * self.multiple
        with torch.device("meta"):
            net = self.build()
        return models.activation_bytes(net, side, side) / side**2


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
    normalization: Normalization = TRAINING,
) -> Path:
    """Write the generator and its description atomically (vidgan.core.files.write_atomic)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "arch": json.dumps({"name": arch, "kwargs": kwargs}),
        "multiple": str(generator.multiple),
        "normalization": json.dumps(normalization.as_metadata()),
        "direction": direction,
        "config": json.dumps(config or {}, default=str),
        "training": json.dumps(training or {}, default=str),
    }
    return write_atomic(path, save(state, metadata=metadata))


CONFIG_VERSION = 2  # {"version": 2, "recipe": {...}, "run": {...}}; a model file keeps no "run"


def recipe_of(config: dict) -> dict:
    """The recipe fields of a saved config, whatever its version: version 2 keeps them apart
    from the run's (paths, device); version 1 (no "version") is one flat dict of both."""
    return config.get("recipe", {}) if "version" in config else config


def read_info(path: str | Path) -> ModelInfo:
    """Read and check a model file's description without loading its weights.

    Everything downstream trusts this description, so a file that is not what it says is a
    VidganError here: metadata that is missing or not JSON, an architecture the registry does
    not know or whose builder refuses the keywords, a multiple that is not the architecture's,
    tensors whose names or shapes differ from the generator the architecture builds.
    """

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            dtypes = {f.get_slice(k).get_dtype() for k in shapes}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
        raise VidganError(f"{path} is not a safetensors model file ({_first_line(exc)})") from None
    if meta.get("format") != FORMAT:
        raise VidganError(f"{path} is not a vidgan model file (no '{FORMAT}' metadata)")
    broken = f"{path} is a broken vidgan model file:"
    arch = _json_field(meta, "arch", broken, required=True)
    if not (isinstance(arch, dict) and isinstance(arch.get("name"), str)
            and isinstance(arch.get("kwargs", {}), dict)):
        raise VidganError(f'{broken} arch must be {{"name": ..., "kwargs": {{...}}}}, not {arch}')
    info = ModelInfo(
        arch=arch["name"],
        kwargs=arch.get("kwargs", {}),
        multiple=_multiple(meta.get("multiple"), broken),
        direction=meta.get("direction", "photo->painting"),
        config=_json_field(meta, "config", broken) or {},
        training=_json_field(meta, "training", broken) or {},
        path=path,
        normalization=Normalization.from_metadata(_json_field(meta, "normalization", broken), broken),
    )
    if info.direction not in DIRECTIONS:
        raise VidganError(f"{broken} direction {info.direction!r} is not one of {DIRECTIONS}")
    _check_weights(info, shapes, dtypes, broken)
    return info


DIRECTIONS = ("photo->painting", "painting->photo")
FLOAT_DTYPES = {"F32", "F16", "BF16"}


def _json_field(meta: dict, key: str, broken: str, required: bool = False):
    if key not in meta:
        if required:
            raise VidganError(f"{broken} its metadata has no {key!r}")
        return None
    try:
        return json.loads(meta[key])
    except ValueError:
        raise VidganError(f"{broken} its {key!r} metadata is not JSON: {meta[key][:60]!r}") from None


def _multiple(text: str | None, broken: str) -> int:
    try:
        multiple = int(text)
    except (TypeError, ValueError):
        raise VidganError(f"{broken} multiple must be a positive whole number, not {text!r}") from None
    if multiple < 1:
        raise VidganError(f"{broken} multiple must be a positive whole number, not {multiple}")
    return multiple


def _check_weights(info: ModelInfo, shapes: dict, dtypes: set, broken: str) -> None:
    """The tensors must be exactly those of the generator the metadata describes (built on the
    meta device: shapes without memory), in a floating-point type."""
    if info.arch not in models.GENERATORS:
        raise VidganError(f"{broken} unknown architecture {info.arch!r}; known: "
                          f"{', '.join(models.GENERATORS)}")
    try:
        with torch.device("meta"):
            net = models.build(info.arch, **info.kwargs)
    except (TypeError, ValueError) as exc:
        raise VidganError(f"{broken} the {info.arch} builder refuses {info.kwargs}: {exc}") from None
    if info.multiple != net.multiple:
        raise VidganError(f"{broken} multiple {info.multiple}, but {info.arch} needs {net.multiple}")
    wanted = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing, extra = sorted(wanted.keys() - shapes.keys()), sorted(shapes.keys() - wanted.keys())
    if missing or extra:
        names = ", ".join([f"missing {k}" for k in missing[:2]] + [f"unexpected {k}" for k in extra[:2]])
        raise VidganError(f"{broken} its tensors are not those of {info.arch} {info.kwargs} ({names})")
    wrong = [k for k in wanted if wanted[k] != shapes[k]]
    if wrong:
        k = wrong[0]
        raise VidganError(f"{broken} tensor {k} is {list(shapes[k])}, {info.arch} {info.kwargs} "
                          f"has {list(wanted[k])} ({len(wrong)} tensor(s) differ)")
    if not dtypes <= FLOAT_DTYPES:
        raise VidganError(f"{broken} its weights are {'/'.join(sorted(dtypes))}, not floating point")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild the generator described by a model file; float32, eval mode, on `device`."""

    info = read_info(resolve(path))
    generator = info.build()
    try:
        state = load_file(str(info.path))
    except Exception as exc:  # noqa: BLE001 - a file cut short after its header, for one
        raise VidganError(f"{info.path} is a broken vidgan model file: its weights cannot be "
                          f"read ({_first_line(exc)})") from None
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
