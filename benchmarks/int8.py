"""Is an int8 student worth shipping? onnxruntime static quantization against fp32, side by side.

    python benchmarks/int8.py --model vidgan/weights/vangogh-realtime.safetensors

Exports the model to ONNX (vidgan.runtime.export), quantizes it statically (QDQ, per-channel weights,
activations calibrated on N trainB photos), then measures on the CPU in one run, alternating:
frames/s of both graphs at 640x360, and the PSNR of the int8 output against fp32 on valB
photos (which calibration never saw). Writes benchmarks/results/int8.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yardstick

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (368, 640)  # 640x360 padded to the student's multiple of 8


def _photos(folder: Path, n: int) -> list[np.ndarray]:
    """The first n photos of `folder` as (1, 3, 256, 256) float32 batches in [-1, 1]."""
    paths = sorted(folder.iterdir())[:n]
    return [np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
            for p in paths]


def quantize(fp32: Path, int8: Path, calibration: list[np.ndarray]) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    prepared = int8.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # dynamic H, W
    quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)


def measure(fp32: Path, int8: Path, photos: list[np.ndarray], seconds: float) -> dict:
    import onnxruntime as ort

    from vidgan.core.device import cpu_cores
    from vidgan.runtime.export.verify import psnr

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_cores()
    sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for k, p in (("fp32", fp32), ("int8", int8))}
    name = sessions["fp32"].get_inputs()[0].name
    run = {k: (lambda x, s=s: s.run(None, {name: x})[0]) for k, s in sessions.items()}
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, *SIZE)).astype(np.float32)
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
    values = [psnr(run["int8"](p), run["fp32"](p)) for p in photos]
    return {"size": f"{SIZE[1]}x{SIZE[0]}", "fps_fp32": round(fps["fp32"], 2),
            "fps_int8": round(fps["int8"], 2), "speedup": round(fps["int8"] / fps["fp32"], 3),
            "psnr_int8_vs_fp32_db": round(float(np.mean(values)), 2),
            "psnr_min_db": round(float(np.min(values)), 2), "photos": len(photos)}


def main() -> None:
    from vidgan.runtime.export.onnx import export_onnx
    from vidgan.tools.bench.results import write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=yardstick.DATA)
    parser.add_argument("--calibration", type=int, default=64, help="trainB photos")
    parser.add_argument("--photos", type=int, default=50, help="valB photos for the PSNR")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="folder for the result JSON (default: the cache's results/; copy it into benchmarks/results/ to record it)")
    args = parser.parse_args()
    model, data = args.model.resolve(), args.data.resolve()
    with tempfile.TemporaryDirectory(prefix="vidgan-int8-") as tmp:
        os.chdir(tmp)  # onnxruntime's calibration writes its scratch files into the cwd
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32)
        quantize(fp32, int8, _photos(data / "trainB", args.calibration))
        result = {"model": args.model.name, "calibration_photos": args.calibration,
                  **measure(fp32, int8, _photos(data / "valB", args.photos), args.seconds)}
    print(json.dumps(result, indent=2))
    write_result("int8", result, args.out)


if __name__ == "__main__":
    main()
