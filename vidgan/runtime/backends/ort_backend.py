"""ONNX Runtime inference: the CPU provider, or CUDA when onnxruntime-gpu is installed.

The ONNX file is exported from the model file on first use (vidgan.runtime.export) and cached as
<model-stem>-<hash>-g<rev>.onnx (.fp16.onnx for fp16, .int8.onnx for int8: statically quantized
for the CPU, kept only within a PSNR bound of fp32), keyed by the model file's content hash and
the revision of the exported graph, in the engines folder of the per-user cache (where `vidgan
export` writes too; `vidgan info` says where): never beside the model or in the checkout. Inputs
and outputs are bound to torch tensors by pointer (IO binding), so no frame is copied on either
device.
"""

from __future__ import annotations

import ctypes
import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from vidgan.core import modelfile
from vidgan.core.cache import CACHE_ENV, engines_dir, writable
from vidgan.core.device import cpu_cores
from vidgan.core.errors import VidganError
from vidgan.core.files import write_atomic
from vidgan.runtime.backends.registry import register
from vidgan.runtime.export.fp16 import convert_fp16
from vidgan.runtime.export.int8 import quantize_int8
from vidgan.runtime.export.onnx import export_onnx, graph_stem

GPU_HINT = ("install onnxruntime-gpu over onnxruntime: pip install 'vidgan[gpu]', then "
            "pip install --force-reinstall --no-deps onnxruntime-gpu")
CUDA_PROVIDER = "CUDAExecutionProvider"
ELEMENT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


class OnnxRuntimeBackend:
    """Runs a vidgan ONNX graph with onnxruntime on `device` ("cpu" or "cuda[:N]").

    __call__ takes (N, 3, H, W) `input_dtype` on `device` (H, W multiples of `multiple`) and
    returns a new tensor of the same shape on `device`. On CUDA the graph runs on a stream of
    its own, ordered after the caller's current stream and before anything the caller enqueues
    next; nothing waits for the host.
    """

    def __init__(self, onnx_path: str | Path, multiple: int, device: torch.device):
        import onnxruntime as ort

        cuda = device.type == "cuda"
        if cuda and CUDA_PROVIDER not in ort.get_available_providers():
            why = shadowed_note(onnxruntime_distributions(), ort.get_available_providers())
            raise VidganError(f"this onnxruntime has no CUDA support; {why or GPU_HINT}, "
                              "or use --backend torch")
        self.device = device
        self.multiple = multiple
        self._stream = torch.cuda.Stream(device) if cuda else None
        self.session = ort.InferenceSession(str(onnx_path), _session_options(ort, cuda),
                                            providers=self._providers())
        if cuda:  # onnxruntime falls back to the CPU, with a log line, when CUDA can't start
            problem = cuda_fallback(self.session.get_providers(), Path(ort.__file__).parent / "capi")
            if problem:
                raise VidganError(problem)
        (inp,), (out,) = self.session.get_inputs(), self.session.get_outputs()
        self._input, self._output = inp.name, out.name
        self.input_dtype, self.output_dtype = ELEMENT_TYPES[inp.type], ELEMENT_TYPES[out.type]
        self._run_options = ort.RunOptions()
        if cuda:  # the caller's stream waits on ours instead (see __call__)
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        lower = next((f"-{p}" for p in ("fp16", "int8") if Path(onnx_path).name.endswith(f".{p}.onnx")), "")
        self.name = f"onnxruntime-{device.type}{lower}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty(x.shape, dtype=self.output_dtype, device=self.device)
        binding = self.session.io_binding()
        binding.bind_input(self._input, self.device.type, self.device.index or 0, _np(x.dtype),
                           tuple(x.shape), x.data_ptr())
        binding.bind_output(self._output, self.device.type, self.device.index or 0,
                            _np(out.dtype), tuple(out.shape), out.data_ptr())
        if self._stream is None:
            self.session.run_with_iobinding(binding, self._run_options)
            return out
        # x and out belong to the caller's stream; since the caller's stream waits for ours
        # before its next work, the allocator can't reuse them while onnxruntime still reads them.
        caller = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(caller)
        self.session.run_with_iobinding(binding, self._run_options)
        caller.wait_stream(self._stream)
        return out

    def _providers(self) -> list:
        if self._stream is None:
            return ["CPUExecutionProvider"]
        options = {"device_id": self.device.index or 0,
                   "user_compute_stream": str(self._stream.cuda_stream),
                   "cudnn_conv_algo_search": "EXHAUSTIVE"}
        return [(CUDA_PROVIDER, options), "CPUExecutionProvider"]


def cuda_fallback(session_providers: list[str], capi: Path) -> str | None:
    """Why a session asked to run on CUDA got only the CPU provider, in one line; None if it did not.

    The real cause (a CUDA or cuDNN library the provider can't find) is what loading the
    provider library from `capi` (onnxruntime's own folder) fails with.
    """
    if CUDA_PROVIDER in session_providers:
        return None
    cause = cuda_provider_error(capi) or "its libraries load, so see onnxruntime's message above"
    return (f"onnxruntime could not start its CUDA provider ({cause}); it needs the CUDA and "
            "cuDNN libraries of its build (pip install 'onnxruntime-gpu[cuda,cudnn]'), or use "
            "--backend torch")


def cuda_provider_error(capi: Path) -> str | None:
    """Why onnxruntime's CUDA provider library in `capi` can't be loaded, or None if it can."""
    library = capi / "libonnxruntime_providers_cuda.so"
    if not library.is_file():
        return f"its {library.name} is missing"
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return str(exc).strip()
    return None


def onnxruntime_distributions(path: list[str] | None = None) -> list[tuple[str, str]]:
    """(name, version) of each installed distribution that writes the `onnxruntime` package.

    onnxruntime and onnxruntime-gpu (and the other builds) install into the same folder, so with
    two of them the files of whichever was installed last are the ones that run
    (microsoft/onnxruntime#26996). `path`: folders to look in (default sys.path).
    """

    found = set()
    for dist in metadata.distributions(path=path) if path is not None else metadata.distributions():
        # top_level.txt when the wheel has one: reading every RECORD takes seconds
        top = dist.read_text("top_level.txt")
        names = top.split() if top is not None else {f.parts[0] for f in dist.files or ()}
        if "onnxruntime" in names:
            found.add((dist.metadata["Name"], dist.version))
    return sorted(found)


def shadowed_note(distributions: list[tuple[str, str]], providers: list[str]) -> str | None:
    """One line about two onnxruntime builds sharing one folder (see onnxruntime_distributions),
    given the providers the importable one offers; None when only one build is installed."""
    if len(distributions) < 2:
        return None
    names = " and ".join(f"{name} {version}" for name, version in distributions)
    gpu = next((f"{n}=={v}" for n, v in distributions if n.lower() == "onnxruntime-gpu"), None)
    fix = f"pip install --force-reinstall --no-deps {gpu or 'onnxruntime-gpu'}"
    if CUDA_PROVIDER in providers:
        return (f"{names} share one folder; the GPU build's files are in place, but reinstalling "
                f"the other undoes that (then: {fix})")
    return f"{names} share one folder and the CPU build's files won, so CUDA is missing: {fix}"


def _session_options(ort, cuda: bool):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of convs: no branches
    options.intra_op_num_threads = 1 if cuda else cpu_cores()
    options.inter_op_num_threads = 1
    # Idle workers sleep instead of spinning: render's decode and encode threads need those
    # cores, and each conv here runs for milliseconds, so waking costs nothing measurable.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: not the CUDA EP's notes on CPU-placed shape ops
    return options


def _np(dtype: torch.dtype):
    return np.float16 if dtype == torch.float16 else np.float32


def _installed(model: Path, device: torch.device, shapes) -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


@register("onnxruntime", devices=("cpu", "cuda"), auto={"cpu": 0}, usable=_installed)
def load(model: Path, device: torch.device, precision: str = "fp32", shapes=()
         ) -> OnnxRuntimeBackend:
    """The model file's cached ONNX graph (exported now if missing) behind onnxruntime."""
    if precision == "fp16" and device.type != "cuda":
        raise VidganError(
            "onnxruntime runs fp16 graphs on CUDA only; use --precision fp32 on the CPU")
    if precision == "int8" and device.type != "cpu":
        raise VidganError("int8 graphs run on the CPU; use --precision fp16 on a GPU")
    info = modelfile.read_info(model)
    return OnnxRuntimeBackend(cached_onnx(info.path, precision), info.multiple, device)


def cached_onnx(model_path: str | Path, precision: str = "fp32") -> Path:
    """The ONNX graph of a model file, exported (and for fp16 converted) only on first use."""
    source = Path(model_path)
    base = graph_stem(source)
    name = f"{base}.{precision}.onnx" if precision in ("fp16", "int8") else f"{base}.onnx"
    folder = engines_dir()
    if (folder / name).is_file():
        return folder / name
    if not writable(folder):
        raise VidganError(f"cannot write the ONNX export of {source.name} to the cache folder "
                          f"{folder}; set {CACHE_ENV} to a writable folder")
    if precision == "fp16":
        return convert_fp16(cached_onnx(source, "fp32"), folder / name)
    if precision == "int8":
        return _quantized(cached_onnx(source, "fp32"), folder / name)
    return export_onnx(source, folder / name)


def _quantized(fp32: Path, int8: Path) -> Path:
    """The int8 graph, or the VidganError that refused it: remembered, so that a model whose
    int8 strays too far is quantized once, not on every run."""
    refused = int8.with_suffix(".refused")
    if refused.is_file():
        raise VidganError(refused.read_text())
    try:
        return quantize_int8(fp32, int8)[0]
    except VidganError as exc:
        write_atomic(refused, exc.message)
        raise

