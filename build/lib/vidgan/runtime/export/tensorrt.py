"""ONNX -> TensorRT engine: the build, its timing cache and what the engine computes in."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from vidgan.core.errors import VidganError
from vidgan.core.files import write_atomic
from vidgan.runtime.export.onnx import INPUT
from vidgan.runtime.export.profile import Profile


def build_engine(onnx_path: Path, profile: Profile, timing_cache: Path, workspace_gib: float = 4.0,
                 opt_level: int = 3, log: Callable[[str], None] = print) -> bytes:
    """Serialized TensorRT engine of a vidgan ONNX file, typed by the graph itself.

    The network is strongly typed (the flag is required on TensorRT 10.12-10.x and ignored
    on 11.x, where weak typing is gone), so an FP16 ONNX gives FP16 kernels and an FP32 one
    FP32. `timing_cache` is read when usable (see use_timing_cache) and rewritten with what this
    build learnt.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise VidganError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.builder_optimization_level = opt_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer types for the inspector
    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT, *profile.shapes())
    config.add_optimization_profile(shapes)
    use_timing_cache(config, timing_cache, log)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise VidganError("TensorRT failed to build the engine (its messages are above); try a "
                          "smaller --max or --batch, or a larger --workspace")
    write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def use_timing_cache(config, path: Path, log: Callable[[str], None] = print) -> None:
    """Give a builder config the timing cache saved at `path`, or a fresh one when there is none.

    A cache outlives TensorRT upgrades and GPU changes: one TensorRT can't parse (it returns
    None, which set_timing_cache would meet with a TypeError) or that is from another GPU is
    replaced by a fresh one, with a warning; the build then rewrites the file.
    """
    blob = path.read_bytes() if path.is_file() else b""
    if blob:
        try:
            cache = config.create_timing_cache(blob)
            if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                return
        except (RuntimeError, TypeError, ValueError):
            pass
        log(f"warning: the timing cache {path} is from another TensorRT version or GPU, or "
            "damaged; starting a fresh one (this build rewrites it)")
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def engine_layers(engine) -> Counter:
    """How many layers of a built engine compute in each type ({"fp16": 40, "fp32": 12})."""
    import tensorrt as trt

    inspector = engine.create_engine_inspector()
    return layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def layer_precisions(engine_info: str) -> Counter:
    """Count an IEngineInspector JSON report's layers by their first output's type.

    TensorRT 10 writes one "Format/Datatype" string per tensor ("Channel major FP16 format ...");
    11 splits it into "Format" and "DataType". Layers reported by name only count as "unknown".
    """
    counts: Counter = Counter()
    for layer in json.loads(engine_info).get("Layers", []):
        outputs = layer.get("Outputs") if isinstance(layer, dict) else None
        if not outputs:
            counts["unknown"] += 1
            continue
        text = f"{outputs[0].get('DataType', '')} {outputs[0].get('Format/Datatype', '')}".upper()
        counts[_precision_word(text)] += 1
    return counts


def _precision_word(text: str) -> str:
    for word, keys in (("fp16", ("FP16", "HALF")), ("bf16", ("BF16",)), ("fp32", ("FP32", "FLOAT")),
                       ("int8", ("INT8",)), ("int", ("INT32", "INT64")), ("bool", ("BOOL",))):
        if any(key in text for key in keys):
            return word
    return "other"
