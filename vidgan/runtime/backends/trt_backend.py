"""TensorRT engine runner, and which engine in engines/ fits this machine.

An engine is specific to the TensorRT version and the GPU it was built on, so every engine has a
JSON sidecar (written by `vidgan.runtime.export`) and is loaded only when the sidecar matches:

    format              "vidgan-engine/1"
    tensorrt            TensorRT version that built it ("10.13.0.35")
    gpu, compute_capability
    model_hash          vidgan.core.modelfile.file_hash of the source model file
    precision           "fp16" or "fp32"; input_dtype / output_dtype ("float32")
    profile             {"min": [N,C,H,W], "opt": [...], "max": [...]}
    multiple, arch, vidgan, layers (precision counts), verification (PSNR vs PyTorch FP32)

TensorRT and CUDA are imported only when an engine is actually loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path

import torch

from vidgan.core.errors import VidganError

FORMAT = "vidgan-engine/1"
INPUT, OUTPUT = "input", "output"
REBUILD = "rebuild it with `vidgan export --fp16`"
ALIGNMENT = 256  # bytes: TensorRT needs every tensor address on such a boundary


def engines_dir() -> Path:
    """$VIDGAN_ENGINES, else engines/ in the per-user cache (vidgan.runtime.backends.cache_dir)."""
    from vidgan.runtime.backends import cache_dir

    if os.environ.get("VIDGAN_ENGINES"):
        return Path(os.environ["VIDGAN_ENGINES"])
    return cache_dir() / "engines"


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

    index = _device(device).index
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
    from vidgan.core.modelfile import file_hash, resolve

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


class TensorRTBackend:
    """Runs a TensorRT engine on NCHW batches that live on the GPU.

    __call__ takes an input of `input_dtype` (float32 for vidgan's engines: the FP16 graph casts
    inside) whose shape lies in the engine's profile, and returns a new output tensor. Work is
    enqueued on a non-default stream of the backend's own, ordered after the caller's current
    stream and before anything the caller enqueues next; nothing waits for the host. Callers on
    any stream or thread share one execution context, so calls run one after another on the GPU.
    """

    def __init__(self, plan: bytes, sidecar: dict, device: torch.device | None = None):
        import tensorrt as trt

        self.device = _device(device)
        self.multiple = int(sidecar["multiple"])
        self.precision = sidecar["precision"]
        self.name = f"tensorrt-{self.precision}"
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self._runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise VidganError(f"TensorRT could not load the engine; {REBUILD}")
            # One context for every caller, made now: its activation memory (sized for the
            # profile's largest shape) is allocated once, here, not by a new caller's first
            # frame in the middle of a stream; and what warms up is what runs.
            self._context = self.engine.create_execution_context()
            self._stream = torch.cuda.Stream(self.device)
        self._lock = threading.Lock()  # one context: set shape, addresses and enqueue together
        self._shape: tuple[int, ...] = ()
        self._out_shape: tuple[int, ...] = ()
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(INPUT))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(OUTPUT))
        low, _, high = self.engine.get_tensor_profile_shape(INPUT, 0)
        self.min_shape, self.max_shape = tuple(low), tuple(high)

    @classmethod
    def from_file(cls, engine: str | Path, device: torch.device | None = None) -> TensorRTBackend:
        """Load an engine whose sidecar matches this TensorRT version and GPU."""
        engine = Path(engine)
        if not engine.is_file():
            raise VidganError(f"engine {engine} does not exist; build one with `vidgan export --fp16`")
        sidecar = read_sidecar(engine)
        reason = sidecar_mismatch(sidecar, current_env(device))
        if reason:
            raise VidganError(f"engine {engine.name} can't run here: {reason}; {REBUILD}")
        return cls(engine.read_bytes(), sidecar, device)

    @classmethod
    def for_model(cls, model_path: str | Path | None, device: torch.device | None = None,
                  directory: Path | None = None, shapes=()) -> TensorRTBackend:
        """The engine built from this model file for this machine that takes `shapes` (see
        profile_gap); says why when there is none."""
        current_env(device)  # TensorRT and a GPU, or the one-line reason
        engine, why = choose_engine(model_path, shapes, directory, device)
        if engine is None:
            raise VidganError(why or f"no TensorRT engine for this model in "
                              f"{directory or engines_dir()}; build one with `vidgan export --fp16`")
        return cls(engine.read_bytes(), read_sidecar(engine), device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) `input_dtype` on `device`, inside the profile -> same shape, `output_dtype`."""
        self._check(x)
        x = aligned(x.contiguous())
        caller = torch.cuda.current_stream(self.device)
        with self._lock, torch.cuda.device(self.device):  # the engine's GPU, whatever is current
            context = self._context
            if x.shape != self._shape:
                if not context.set_input_shape(INPUT, tuple(x.shape)):
                    raise VidganError(f"TensorRT rejected input shape {tuple(x.shape)}")
                self._shape, self._out_shape = x.shape, tuple(context.get_tensor_shape(OUTPUT))
            # A new output from torch's caching allocator (no cudaMalloc, 512-byte aligned), on the
            # caller's stream: the caller waits for ours below before any later work, so the
            # allocator can't hand x or out to anything else while TensorRT still uses them, and
            # a caller may keep several outputs in flight.
            out = torch.empty(self._out_shape, dtype=self.output_dtype, device=self.device)
            self._bind(INPUT, x)
            self._bind(OUTPUT, out)
            self._stream.wait_stream(caller)
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to enqueue a batch of shape {tuple(x.shape)}")
            caller.wait_stream(self._stream)
        return out

    def _bind(self, name: str, tensor: torch.Tensor) -> None:
        if not self._context.set_tensor_address(name, tensor.data_ptr()):
            raise RuntimeError(f"TensorRT refused the address of {name} {tuple(tensor.shape)} "
                               f"(0x{tensor.data_ptr():x}; it needs {ALIGNMENT}-byte alignment)")

    def _check(self, x: torch.Tensor) -> None:
        if x.device != self.device or x.dtype != self.input_dtype:
            raise ValueError(f"{self.name} takes {self.input_dtype} on {self.device}, "
                             f"not {x.dtype} on {x.device}")
        shape = tuple(x.shape)
        if len(shape) == 4 and (shape[2] % self.multiple or shape[3] % self.multiple):
            raise ValueError(f"{self.name} takes H and W in multiples of {self.multiple}, not {shape}")
        inside = len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in
                                         zip(self.min_shape, shape, self.max_shape))
        if not inside:
            raise VidganError(
                f"input shape {shape} is outside the engine's profile {self.min_shape} .. "
                f"{self.max_shape}; rebuild with `vidgan export --fp16 --min HxW --max HxW --batch N`"
            )


def aligned(x: torch.Tensor) -> torch.Tensor:
    """x, or a copy where its data does not start on an ALIGNMENT boundary: a view such as
    batch[1:] starts mid-allocation, and TensorRT refuses such an address."""
    return x if x.data_ptr() % ALIGNMENT == 0 else x.clone(memory_format=torch.contiguous_format)


def _device(device: torch.device | str | None) -> torch.device:
    device = torch.device(device) if device is not None else torch.device("cuda")
    if device.type != "cuda":
        raise VidganError(f"TensorRT runs on a CUDA device, not {device}")
    return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise VidganError(f"engine I/O type {dtype} is not float32/float16; {REBUILD}")
    return table[dtype]
