"""TensorRT engine runner: an engine built by `vidgan export --fp16` whose sidecar matches this
machine (vidgan.runtime.export.engines). TensorRT is imported only when an engine is loaded.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import torch

from vidgan.core.cache import engines_dir
from vidgan.core.errors import VidganError
from vidgan.runtime.backends.registry import register
from vidgan.runtime.export.engines import (
    INPUT,
    OUTPUT,
    REBUILD,
    choose_engine,
    cuda_device,
    current_env,
    read_sidecar,
    sidecar_mismatch,
)

ALIGNMENT = 256  # bytes: TensorRT needs every tensor address on such a boundary


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

        self.device = cuda_device(device)
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


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise VidganError(f"engine I/O type {dtype} is not float32/float16; {REBUILD}")
    return table[dtype]


def _has_engine(model: Path, device: torch.device, shapes) -> bool:
    """Whether an engine for this model runs here and takes `shapes`; an engine that exists
    but can't run this gets a warning line saying why."""
    engine, why = choose_engine(model, shapes, device=device)
    if why:
        print(f"warning: not using TensorRT: {why}; running torch instead", file=sys.stderr)
    return engine is not None


@register("tensorrt", devices=("cuda",), auto={"cuda": 0}, usable=_has_engine)
def load(model: Path, device: torch.device | None = None, precision: str = "auto", shapes=(),
         directory: Path | None = None) -> TensorRTBackend:
    """The engine built from this model file for this machine that takes `shapes` (see
    engines.profile_gap); says why when there is none. The engine's precision is its own."""
    if precision == "int8":
        raise VidganError("int8 graphs run through onnxruntime on the CPU; vidgan's engines are fp16")
    current_env(device)  # TensorRT and a GPU, or the one-line reason
    engine, why = choose_engine(model, shapes, directory, device)
    if engine is None:
        raise VidganError(why or f"no TensorRT engine for this model in "
                          f"{directory or engines_dir()}; build one with `vidgan export --fp16`")
    return TensorRTBackend(engine.read_bytes(), read_sidecar(engine), device)
