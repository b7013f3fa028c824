"""Build, verify and benchmark vidgan's inference paths on an NVIDIA GPU; see gpu_check.sh.

Model-only frames/s (batch 1, random weights: speed doesn't depend on them) of the `fast` and
`resnet` generators at 720p and 1080p for torch fp32 / fp16 / compiled fp16, onnxruntime CUDA
(fp16 ONNX) and TensorRT fp16, each with its accuracy against torch FP32 (PSNR on photos), its
TFLOP/s and its share of the GPU's dense FP16 peak; then the TensorRT targets marked met/not met.
Needs torch, onnx, onnxruntime (onnxruntime-gpu for the CUDA row) and vidgan's core deps;
no PyAV. TensorRT rows say "not installed" where it isn't. `--cpu` runs the torch fp32 row at a
tiny size so the plumbing can be checked on any machine.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from vidgan import models
from vidgan.export import (
    convert_fp16,
    export_model,
    export_onnx,
    psnr,
    sample_images,
    torch_reference,
)
from vidgan.modelfile import BUNDLED, save_model

# Dense FP16 tensor-core TFLOP/s (no sparsity) by a substring of the device name; longest first.
PEAK_TFLOPS = {
    "H200": 989, "H100 PCIe": 756, "H100 NVL": 835, "H100": 989, "GH200": 989, "B200": 2250,
    "A100": 312, "A10G": 125, "A10": 125, "L40S": 362, "L40": 181, "L4": 121, "A6000": 155,
    "RTX 4090": 165, "RTX 4080": 97, "RTX 3090": 71, "V100": 125, "T4": 65,
}
TARGETS = {"vs_torch_fp16": 2.0, "vs_torch_fp32": 4.0, "pct_peak": 35.0}
ROWS = ("torch fp32", "torch fp16", "torch compiled fp16", "onnxruntime CUDA fp16", "TensorRT fp16")


def main() -> int:
    args = parse_args()
    device = torch.device("cpu" if args.cpu else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to PyTorch; run with --cpu to check the script only",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vidgan-gpu-check-"))
    report = {"environment": environment(device), "sizes": args.sizes, "seconds": args.seconds}
    report["peak"] = peak(device)
    if not args.cpu:
        report["bundled_engine"] = bundled_engine(args)
    rows = []
    for name in args.models:
        rows += bench_model(name, args, device, work)
    report["rows"] = rows
    report["targets"] = targets(rows, report["peak"]["tflops"], args.sizes[0])
    print_report(report)
    path = write(report)
    print(f"wrote {path}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fast", "resnet"], choices=["fast", "resnet"])
    p.add_argument("--sizes", nargs="+", default=None, help="HxW, e.g. 720x1280 1080x1920")
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per row")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    p.add_argument("--cpu", action="store_true", help="plumbing check: torch fp32 on the CPU, tiny")
    args = p.parse_args()
    default_sizes = ["64x64"] if args.cpu else ["720x1280", "1080x1920"]
    args.sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes or default_sizes]
    args.seconds = args.seconds or (0.5 if args.cpu else 2.0)
    return args


def environment(device: torch.device) -> dict:
    import onnxruntime as ort

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
           "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(),
           "tensorrt": _version("tensorrt"), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["compute_capability"] = "{}.{}".format(*torch.cuda.get_device_capability())
        env["cudnn"] = torch.backends.cudnn.version()
        env["tf32_convs"] = torch.backends.cudnn.allow_tf32
    return env


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(__import__(module), "__version__", "?")


def peak(device: torch.device) -> dict:
    """The dense FP16 peak from the table by GPU name, and a measured large fp16 matmul."""
    if device.type == "cpu":
        return {"tflops": None, "source": "cpu mode", "matmul_fp16_tflops": None}
    name = torch.cuda.get_device_name()
    table = next((v for k, v in sorted(PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0]))
                  if k in name), None)
    measured = matmul_tflops()
    return {"tflops": table or measured, "source": "table" if table else "measured matmul",
            "matmul_fp16_tflops": round(measured, 1)}


def matmul_tflops(n: int = 8192, seconds: float = 2.0) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    rate = timed(lambda: a @ b, seconds)
    return 2 * n**3 * rate / 1e12


def timed(step, seconds: float, warmup: int = 3) -> float:
    """Calls per second of `step` over about `seconds`, GPU work included."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n % 4 == 0:
            sync()
            if time.perf_counter() - start >= seconds:
                return n / (time.perf_counter() - start)


def bundled_engine(args) -> dict:
    """Build and verify the engine users get from `vidgan export --fp16` (when there is a model)."""
    if not BUNDLED.is_file():
        return {"status": f"skipped: no bundled model at {BUNDLED}"}
    if _version("tensorrt") is None:
        return {"status": "not installed: pip install 'vidgan[trt]'"}
    try:
        paths = export_model(None, fp16=True, overwrite=True)
        return {"status": "ok", "engine": str(paths[-1]),
                "sidecar": json.loads(paths[-1].with_suffix(".json").read_text())}
    except Exception as exc:  # noqa: BLE001 - the report says what failed and the benchmark goes on
        return {"status": f"error: {exc}"}


def bench_model(name: str, args, device: torch.device, work: Path) -> list[dict]:
    torch.manual_seed(0)
    generator = models.build(name).eval()
    model_file = save_model(work / f"{name}.safetensors", generator, name, {})
    gflop_256 = models.gflops(generator, 256, 256)
    runners = make_runners(name, generator, model_file, args, device, work)
    rows = []
    for h, w in args.sizes:
        gflop = gflop_256 * h * w / (256 * 256)  # convolutions: FLOPs scale with pixels
        images = sample_images(1, (h, w))
        reference = torch_reference(generator, images, device.type)
        for label in ROWS:
            row = {"model": name, "backend": label, "size": f"{h}x{w}", "gflop_per_frame": round(gflop, 1)}
            runner = runners.get(label)
            if isinstance(runner, str):
                row["status"] = runner
            else:
                row.update(measure(runner, images, reference, gflop, args.seconds, device))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def measure(runner, images, reference, gflop: float, seconds: float, device) -> dict:
    try:
        x = images.to(device)
        out = runner(x)
        accuracy = psnr(out.float(), reference)
        fps = timed(lambda: runner(x), seconds)
    except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others
        traceback.print_exc()
        return {"status": f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return {"status": "ok", "fps": round(fps, 2), "psnr_db": round(accuracy, 1),
            "tflops": round(fps * gflop / 1e3, 2)}


def make_runners(name, generator, model_file: Path, args, device, work: Path) -> dict:
    """label -> callable(x float32 NCHW on device) -> output, or a string saying why not."""
    runners: dict = {"torch fp32": torch_runner(generator, device, torch.float32)}
    if device.type == "cpu":
        runners.update({label: "skipped: cpu mode" for label in ROWS[1:]})
        if _version("tensorrt") is None:
            runners["TensorRT fp16"] = "not installed: pip install 'vidgan[trt]'"
        return runners
    runners["torch fp16"] = torch_runner(generator, device, torch.float16)
    runners["torch compiled fp16"] = ("skipped: --no-compile" if args.no_compile else
                                      torch_runner(generator, device, torch.float16, compiled=True))
    runners["onnxruntime CUDA fp16"] = ort_runner(model_file, work)
    runners["TensorRT fp16"] = trt_runner(model_file, args.sizes, work)
    return runners


def torch_runner(generator, device, dtype, compiled: bool = False):
    model = copy.deepcopy(generator).to(device, dtype, memory_format=torch.channels_last).eval()
    if compiled:
        model = torch.compile(model, dynamic=False)  # one graph per size, as a pipeline would use

    @torch.inference_mode()
    def run(x):
        return model(x.to(dtype).contiguous(memory_format=torch.channels_last))

    return run


def ort_runner(model_file: Path, work: Path):
    import numpy as np
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "not installed: pip install onnxruntime-gpu (vidgan[gpu])"
    fp16 = convert_fp16(export_onnx(model_file, work / f"{model_file.stem}.onnx"),
                        work / f"{model_file.stem}.fp16.onnx")
    index = torch.cuda.current_device()
    session = ort.InferenceSession(str(fp16), providers=[
        ("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return "error: onnxruntime did not place the model on CUDA"

    def run(x):
        x = x.contiguous()
        out = torch.empty_like(x)
        binding = session.io_binding()
        for bind, name, t in ((binding.bind_input, "input", x), (binding.bind_output, "output", out)):
            bind(name, "cuda", index, np.float32, tuple(t.shape), t.data_ptr())
        torch.cuda.current_stream().synchronize()  # onnxruntime runs on its own stream
        session.run_with_iobinding(binding)
        return out

    return run


def trt_runner(model_file: Path, sizes, work: Path):
    """Build (and verify) a TensorRT fp16 engine whose profile covers `sizes`, then run it."""
    if _version("tensorrt") is None:
        return "not installed: pip install 'vidgan[trt]'"
    from vidgan.backends.trt_backend import TensorRTBackend

    largest = max(sizes, key=lambda s: s[0] * s[1])
    smallest = min(sizes, key=lambda s: s[0] * s[1])
    low = (min(256, smallest[0]), min(256, smallest[1]))
    try:
        paths = export_model(model_file, work / "engines", fp16=True, overwrite=True,
                             min_shape=low, opt_shape=sizes[0], max_shape=largest)
        backend = TensorRTBackend.from_file(paths[-1])
    except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
        traceback.print_exc()
        return f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    sidecar = json.loads(paths[-1].with_suffix(".json").read_text())
    print(f"TensorRT engine layers: {sidecar['layers']}", flush=True)
    return backend


def targets(rows: list[dict], peak_tflops: float | None, size: tuple[int, int]) -> list[dict]:
    """The TensorRT targets on resnet at the first size (720p by default)."""
    at = f"{size[0]}x{size[1]}"
    fps = {r["backend"]: r.get("fps") for r in rows if r["model"] == "resnet" and r["size"] == at}
    trt = fps.get("TensorRT fp16")
    gflop = next((r["gflop_per_frame"] for r in rows if r["model"] == "resnet"), None)
    checks = [
        (f"TensorRT >= 2x torch fp16 eager (resnet {at})", trt, fps.get("torch fp16"),
         lambda t, b: t / b, TARGETS["vs_torch_fp16"], "x"),
        (f"TensorRT >= 4x torch fp32 eager (resnet {at})", trt, fps.get("torch fp32"),
         lambda t, b: t / b, TARGETS["vs_torch_fp32"], "x"),
        (f"TensorRT >= 35% of dense FP16 peak (resnet {at})", trt, peak_tflops,
         lambda t, p: 100 * t * gflop / 1e3 / p, TARGETS["pct_peak"], "%"),
    ]
    out = []
    for text, value, base, ratio, needed, unit in checks:
        if value is None or not base or gflop is None:
            out.append({"target": text, "status": "not measured (TensorRT not installed or failed)"})
            continue
        got = ratio(value, base)
        out.append({"target": text, "value": round(got, 2), "unit": unit,
                    "status": "met" if got >= needed else "not met"})
    return out


def print_report(report: dict) -> None:
    env, pk = report["environment"], report["peak"]
    print(f"\n{env.get('gpu', 'CPU')}  torch {env['torch']} (CUDA {env['cuda']})  onnxruntime "
          f"{env['onnxruntime']}  TensorRT {env['tensorrt'] or 'not installed'}")
    if pk["tflops"]:
        print(f"dense FP16 peak {pk['tflops']} TFLOP/s ({pk['source']}); "
              f"measured fp16 matmul {pk['matmul_fp16_tflops']} TFLOP/s")
    if "bundled_engine" in report:
        print(f"bundled model engine: {report['bundled_engine']['status']}")
    header = f"{'model':7} {'size':10} {'backend':22} {'fps':>8} {'TFLOP/s':>8} {'% peak':>7} {'PSNR dB':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in report["rows"]:
        if r["status"] != "ok":
            print(f"{r['model']:7} {r['size']:10} {r['backend']:22} {r['status']}")
            continue
        pct = f"{100 * r['tflops'] / pk['tflops']:.1f}" if pk["tflops"] else "-"
        print(f"{r['model']:7} {r['size']:10} {r['backend']:22} {r['fps']:8.1f} "
              f"{r['tflops']:8.1f} {pct:>7} {r['psnr_db']:8.1f}")
    print()
    for t in report["targets"]:
        value = f" ({t['value']}{t['unit']})" if "value" in t else ""
        print(f"{t['target']}: {t['status']}{value}")


def write(report: dict) -> Path:
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    folder.mkdir(parents=True, exist_ok=True)
    name = "gpu_check_cpu.json" if report["environment"]["device"] == "cpu" else "gpu_check.json"
    path = folder / name
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    sys.exit(main())
