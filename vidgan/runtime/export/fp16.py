"""FP32 ONNX -> FP16 ONNX: fp16 weights and compute, InstanceNorm kept fp32, fp32 I/O."""

from __future__ import annotations

import warnings
from pathlib import Path

from vidgan.core.files import atomic_path
from vidgan.runtime.export.onnx import set_metadata


def convert_fp16(onnx_path: str | Path, fp16_path: str | Path) -> Path:
    """FP16 copy of an FP32 vidgan ONNX: fp16 weights and compute, fp32 input and output.

    InstanceNormalization stays fp32 between Casts (fp16 variance overflows and gives
    wrong or constant images), as do the converter's default blocked ops (Resize among them:
    onnxruntime has no fp16 Resize; nearest-neighbour is exact in either type). The result
    passes onnx.checker (full) and strict type inference. Weights beyond fp16's range are clamped
    (tiny ones to +-1e-7, huge ones to +-65504); metadata "vidgan.fp16_clamped" counts them.
    """
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(onnx_path))
    block = list(float16.DEFAULT_OP_BLOCK_LIST) + ["InstanceNormalization"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # one warning per weight clamped into fp16's range
        half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    clamped = sum("truncated" in str(w.message) for w in caught)
    set_metadata(half, {"vidgan.precision": "fp16", "vidgan.io_dtype": "float32",
                         "vidgan.fp16_clamped": str(clamped)})
    onnx.checker.check_model(half, full_check=True)
    onnx.shape_inference.infer_shapes(half, check_type=True, strict_mode=True)
    fp16_path = Path(fp16_path)
    with atomic_path(fp16_path) as tmp:
        onnx.save(half, str(tmp))
    return fp16_path
