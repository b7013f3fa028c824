"""PyTorch inference: CPU in fp32 on all cores; CUDA in fp16 (or fp32) with channels_last,
optionally compiled (torch.compile) and replayed from CUDA graphs captured per input shape."""

from __future__ import annotations

import torch

from vidgan.core import modelfile
from vidgan.core.device import cpu_cores
from vidgan.core.errors import VidganError
from vidgan.runtime.backends.registry import register

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class TorchBackend:
    """Runs a generator with PyTorch on `device`.

    __call__ takes (N, 3, H, W) `input_dtype` on `device` (H, W multiples of `multiple`) and
    returns a new tensor of the same shape and dtype, without waiting for the GPU.
    """

    def __init__(self, generator: torch.nn.Module, multiple: int, device: torch.device,
                 precision: str = "fp32", compile: bool = False, cuda_graphs: bool = False):
        cuda = device.type == "cuda"
        if precision == "int8":
            raise VidganError("int8 runs through onnxruntime on the CPU; use --backend onnxruntime")
        if not cuda and precision != "fp32":
            raise VidganError(f"{precision} runs on a CUDA GPU; use --precision fp32 on the CPU")
        if not cuda and cuda_graphs:
            raise VidganError("CUDA graphs need a CUDA GPU; drop --cuda-graphs on the CPU")
        if cuda:
            torch.backends.cudnn.benchmark = True  # video frames keep one shape: tune once
        else:
            torch.set_num_threads(cpu_cores())
        self.device = device
        self.multiple = multiple
        self.input_dtype = DTYPES[precision]
        # channels_last lets cuDNN use its NHWC tensor-core kernels; on the CPU it was slower.
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        model = generator.to(device, self.input_dtype, memory_format=self.memory_format)
        model = model.eval().requires_grad_(False)
        # dynamic=False: one specialized graph per frame size, as video keeps one size.
        self.model = torch.compile(model, dynamic=False) if compile else model
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.name = (f"torch-{device.type}-{precision}" + "-compiled" * compile
                     + "-cudagraphs" * cuda_graphs)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)  # a no-op for frames.normalize's output
        if self.cuda_graphs:
            return self._replay(x)
        return self.model(x)

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()  # the next replay overwrites static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        """Record one forward pass at x's shape. Runs once per shape and synchronizes the GPU."""
        static_in = x.clone(memory_format=self.memory_format)
        caller = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(caller)
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN tuning, lazy init, compile
            for _ in range(3):
                self.model(static_in)
        caller.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out


@register("torch", devices=("cpu", "cuda"), auto={"cuda": 1, "cpu": 1}, options=("compile", "cuda_graphs"))
def load(model, device: torch.device, precision: str, shapes=(), compile: bool = False,
         cuda_graphs: bool = False) -> TorchBackend:
    generator, info = modelfile.load_model(model)
    return TorchBackend(generator, info.multiple, device, precision, compile, cuda_graphs)
