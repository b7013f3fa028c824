"""Which TensorRT engine runs here: the JSON sidecar beside each engine, this machine's
TensorRT and GPU, and the shapes a run needs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from vidgan.core.cache import engines_dir
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import file_hash, resolve
from vidgan.runtime.export.onnx import INPUT, OUTPUT  # noqa: F401 - every engine's tensor names

FORMAT = "vidgan-engine/1"
REBUILD = "rebuild it with `vidgan export --fp16`"

def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def read_sidecar(engine: Path) -> dict:
    path = sidecar_path(engine)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VidganError(f"engine sidecar {path} is missing or unreadable ({exc}); {REBUILD}") from None


def sidecar_mismatch(sidecar: dict, env: dict) -> str | None:
    """Why an engine described by `sidecar` can't run here (env: current_env()), or None.

    TensorRT refuses engines from another version, and tactics are chosen for one GPU, so both
    must match exactly.
    """
    if sidecar.get("format") != FORMAT:
        return f"its sidecar is not a {FORMAT} file"
    if sidecar.get("tensorrt") != env["tensorrt"]:
        return f"it was built with TensorRT {sidecar.get('tensorrt')}, this is TensorRT {env['tensorrt']}"
    if sidecar.get("compute_capability") != env["compute_capability"] or sidecar.get("gpu") != env["gpu"]:
        return (f"it was built for {sidecar.get('gpu')} (compute capability "
                f"{sidecar.get('compute_capability')}), this GPU is {env['gpu']} "
                f"(compute capability {env['compute_capability']})")
    return None


def current_env(device: torch.device | None = None) -> dict:
    """{"tensorrt", "gpu", "compute_capability"} of this machine; VidganError when either is missing."""
    missing = missing_requirements()
    if missing:
        raise VidganError(missing)
    import tensorrt as trt

    index = cuda_device(device).index
    major, minor = torch.cuda.get_device_capability(index)
    return {"tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(index),
            "compute_capability": f"{major}.{minor}"}


# The CUDA major of the `trt` extra's tensorrt-cuNN (pyproject.toml): that of torch's own build.
TRT_EXTRA_CUDA = "13"
NO_TRT_FASTEST = "GPU inference without TensorRT runs torch fp16 (channels_last), which needs nothing more"


def tensorrt_install() -> str:
    """How to install TensorRT for this torch's CUDA, and when that can't work, in a few words."""
    major = (torch.version.cuda or "").partition(".")[0]
    if not major:
        return "a CUDA build of torch first, then TensorRT"
    command = ("pip install 'vidgan[trt]'" if major == TRT_EXTRA_CUDA
               else f"pip install tensorrt-cu{major}")
    # tensorrt-cuNN on PyPI is a placeholder whose install downloads the libraries
    return (f"{command}: it downloads TensorRT for CUDA {major} from NVIDIA's package index while "
            "installing, so offline or with only PyPI reachable it fails")


def missing_requirements() -> str | None:
    """One line naming what TensorRT engines need and this machine lacks, or None."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append(f"TensorRT (install it with: {tensorrt_install()})")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (none is visible to PyTorch: needs an NVIDIA GPU, its driver "
                       "and a CUDA build of torch)")
    if not missing:
        return None
    return (f"TensorRT engines need {' and '.join(missing)}; `vidgan export --onnx` works "
            f"without them, and {NO_TRT_FASTEST}")


def profile_gap(sidecar: dict, shapes) -> str | None:
    """Why an engine (described by its sidecar) can't take every shape in `shapes`, or None.

    shapes: (N, H, W) items, each batches of 1..N frames processed at H x W, before the padding
    to the engine's multiple that vidgan.runtime.frames adds. The reason ends with the export flags that
    build an engine which can.
    """
    multiple = int(sidecar.get("multiple", 1))
    low, high = (sidecar.get("profile") or {}).get("min"), (sidecar.get("profile") or {}).get("max")
    if not (low and high):
        return f"its sidecar has no profile; {REBUILD}"
    for n, h, w in shapes:
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        if low[0] > 1 or n > high[0]:
            return (f"it takes batches of {low[0]}..{high[0]} frames, not {n}; "
                    f"rebuild it with `vidgan export --fp16 --batch {n}`")
        if not (low[2] <= ph <= high[2] and low[3] <= pw <= high[3]):
            flag = (f"--min {min(ph, low[2])}x{min(pw, low[3])}" if ph < low[2] or pw < low[3]
                    else f"--max {max(ph, high[2])}x{max(pw, high[3])}")
            return (f"it takes {low[2]}x{low[3]} .. {high[2]}x{high[3]} (HxW), not {ph}x{pw}; "
                    f"rebuild it with `vidgan export --fp16 {flag}`")
    return None


def choose_engine(model_path: str | Path | None, shapes=(), directory: Path | None = None,
                  device: torch.device | None = None) -> tuple[Path | None, str | None]:
    """The engine of this model file (fp16 first, newest first) that runs on this TensorRT and
    GPU and takes `shapes` (see profile_gap), or None and why not in one line.

    The reason is None when the model has no engine at all. Cheap then: without engine
    sidecars TensorRT is not imported.
    """
    candidates = _engines_for(model_path, directory)
    if not candidates:
        return None, None
    missing = missing_requirements()
    if missing:
        return None, missing
    env = current_env(device)
    reasons = []
    for engine, sidecar in candidates:
        why = sidecar_mismatch(sidecar, env)
        why = f"{why}; {REBUILD}" if why else profile_gap(sidecar, shapes)
        if why is None:
            return engine, None
        reasons.append(f"engine {engine.name} can't run here: {why}")
    return None, reasons[0]


def _engines_for(model_path: str | Path | None, directory: Path | None) -> list[tuple[Path, dict]]:
    """(engine, sidecar) pairs for this model's hash, fp16 first, newest first."""
    directory = directory or engines_dir()
    sidecars = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not sidecars:
        return []
    digest = file_hash(resolve(model_path))
    found = []
    for path in sidecars:
        try:
            sidecar = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        engine = path.with_suffix(".engine")
        if sidecar.get("model_hash") == digest and engine.is_file():
            found.append((engine, sidecar))
    return sorted(found, key=lambda pair: pair[1].get("precision") != "fp16")


def cuda_device(device: torch.device | str | None) -> torch.device:
    """The indexed CUDA device an engine runs on (None: the current one)."""
    device = torch.device(device) if device is not None else torch.device("cuda")
    if device.type != "cuda":
        raise VidganError(f"TensorRT runs on a CUDA device, not {device}")
    return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
