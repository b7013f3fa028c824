"""Is int8 worth it? vidgan's own onnxruntime backend in fp32 and in int8, side by side.

    python benchmarks/int8.py --model vidgan/weights/vangogh-realtime.safetensors

Runs the model's fp32 graph and its int8 graph (quantized as `--precision int8` does, on
vidgan's calibration images, but kept whatever its PSNR, so that a refused one is measured too)
through vidgan's onnxruntime backend, then measures in one run, alternating: frames/s of both at
640x360, the worst PSNR on vidgan's own check images (what `--precision int8` compares with
INT8_MIN_PSNR) and the PSNR against fp32 on valB photos, which nothing calibrated on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yardstick

SIZE = (368, 640)  # 640x360 padded to the student's multiple of 8


def measure(model: Path, photos: np.ndarray, seconds: float, scratch: Path) -> dict:
    from vidgan.core.modelfile import read_info
    from vidgan.runtime.backends.ort_backend import OnnxRuntimeBackend, cached_onnx
    from vidgan.runtime.export.int8 import INT8_MIN_PSNR, quantize_int8
    from vidgan.runtime.export.verify import psnr

    fp32 = cached_onnx(model)
    int8, check_psnr = quantize_int8(fp32, scratch / "int8.onnx", min_psnr=0)
    multiple, cpu = read_info(model).multiple, torch.device("cpu")
    run = {"fp32": OnnxRuntimeBackend(fp32, multiple, cpu), "int8": OnnxRuntimeBackend(int8, multiple, cpu)}
    x = torch.rand(1, 3, *SIZE) * 2 - 1
    counts, spent = dict.fromkeys(run, 0), dict.fromkeys(run, 0.0)
    for f in run.values():
        f(x)  # warm-up
    while min(spent.values()) < seconds:  # alternate, so both see the same machine
        for k, f in run.items():
            t = time.perf_counter()
            f(x)
            spent[k] += time.perf_counter() - t
            counts[k] += 1
    fps = {k: counts[k] / spent[k] for k in run}
    batches = [torch.from_numpy(p).permute(2, 0, 1)[None].float() / 127.5 - 1 for p in photos]
    values = [psnr(run["int8"](b), run["fp32"](b)) for b in batches]
    return {"size": f"{SIZE[1]}x{SIZE[0]}", "backend": run["int8"].name,
            "fps_fp32": round(fps["fp32"], 2), "fps_int8": round(fps["int8"], 2),
            "speedup": round(fps["int8"] / fps["fp32"], 3), "min_psnr_bound_db": INT8_MIN_PSNR,
            "check_images_psnr_db": round(check_psnr, 1), "kept": check_psnr >= INT8_MIN_PSNR,
            "psnr_int8_vs_fp32_db": round(float(np.mean(values)), 2),
            "psnr_min_db": round(float(np.min(values)), 2), "photos": len(photos)}


def main() -> None:
    from vidgan.tools.bench.results import write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=yardstick.DATA)
    parser.add_argument("--photos", type=int, default=50, help="valB photos for the PSNR")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="folder for the result JSON (default: the "
                        "cache's results/; copy it into benchmarks/results/ to record it)")
    args = parser.parse_args()
    photos = yardstick.load_images(yardstick.image_paths(args.data / "valB")[:args.photos])
    with tempfile.TemporaryDirectory(prefix="vidgan-int8-") as scratch:
        result = {"model": args.model.name, **measure(args.model, photos, args.seconds, Path(scratch))}
    write_result("int8", result, args.out)
    print(f"int8 {result['speedup']:.2f}x fp32 at {result['size']}, PSNR {result['psnr_int8_vs_fp32_db']} dB "
          f"(lowest {result['psnr_min_db']}) on {result['photos']} valB photos; "
          f"{'kept' if result['kept'] else 'refused'} by --precision int8 "
          f"({result['check_images_psnr_db']} dB on its check images, bound "
          f"{result['min_psnr_bound_db']:.0f})")


if __name__ == "__main__":
    main()
