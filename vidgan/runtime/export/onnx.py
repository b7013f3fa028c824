"""Model file -> ONNX: the generator as a graph with dynamic batch, height and width.

The onnx package is imported by the functions that use it: half a second that running a
model (whose backend module imports this one) never pays.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch

from vidgan import __version__
from vidgan.core.files import atomic_path
from vidgan.core.modelfile import file_hash, load_model, resolve
from vidgan.runtime.export.folding import fold_shuffles

INPUT, OUTPUT = "input", "output"  # the graph's (and every engine's) tensor names
DYNAMIC_AXES = {name: {0: "batch", 2: "height", 3: "width"} for name in (INPUT, OUTPUT)}
# What export_onnx writes for a given model file; a new number leaves older exports unused.
GRAPH_REVISION = 2  # 2: pixel shuffles folded into convolutions


def graph_stem(source: Path) -> str:
    """The file stem of a model file's exported graphs (and engines): model, hash, revision."""
    return f"{source.stem}-{file_hash(source)}-g{GRAPH_REVISION}"


def export_onnx(model_path: str | Path | None, onnx_path: str | Path, opset: int = 17) -> Path:
    """Export a model file's generator to ONNX: input "input", output "output", both NCHW
    float32 in [-1, 1] with dynamic batch, height and width (multiples of the model's multiple).

    Pixel shuffles are folded into convolutions first (folding.py): same output, faster graph.
    Uses the TorchScript exporter (dynamo=False): it needs no onnxscript and exports
    ReflectionPad and nearest Upsample with fully dynamic H and W. The file is checked with
    onnx.checker (full check) and carries the source model's hash in its metadata_props
    (vidgan.model_hash, vidgan.arch, vidgan.multiple, vidgan.precision, vidgan.version).
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (InstanceNormalization and Resize), not {opset}")
    source = resolve(model_path)
    generator, info = load_model(source)
    generator = fold_shuffles(generator)
    side = -(-64 // info.multiple) * info.multiple
    sample = torch.zeros(1, 3, side, side)
    onnx_path = Path(onnx_path)
    with atomic_path(onnx_path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and folding notes
            torch.onnx.export(
                generator, (sample,), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=DYNAMIC_AXES,
            )
        model = onnx.load(str(tmp))
        fold_constants(model)
        set_metadata(model, {
            "vidgan.model_hash": file_hash(source), "vidgan.arch": info.arch,
            "vidgan.multiple": str(info.multiple), "vidgan.version": __version__,
            "vidgan.precision": "fp32",
        })
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
    return onnx_path


def fold_constants(model) -> None:
    """Replace nodes whose inputs are all constants by initializers holding their outputs.

    The TorchScript exporter leaves each ReflectionPad's pads as a small int64 computation
    (ConstantOfShape, Concat, Reshape, Slice with step -1, Transpose, Cast) that it can't fold;
    folding it gives every Pad constant pads, which any ONNX consumer (TensorRT's parser
    included) handles, and a graph that reads as the network it is.
    """
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type in _FOLDABLE and all(name in known for name in node.input if name):
            values = ReferenceEvaluator(node).run(None, {n: known[n] for n in node.input if n})
            known.update(zip(node.output, values))
        else:
            kept.append(node)
    needed = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    existing = {t.name for t in graph.initializer}
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(known[name], name)
                             for name in sorted(needed & known.keys() - existing))


_FOLDABLE = {"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast",
             "Unsqueeze", "Squeeze", "Gather", "Identity"}


def op_precisions(model) -> dict[str, Counter]:
    """How many nodes of each op type produce each float type: {"float16": {"Conv": 9}, ...}.

    A node counts under the element type of its first output (after shape inference); nodes
    with non-float outputs (shape arithmetic) are left out.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*graph.value_info, *graph.input, *graph.output]}
    floats = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
              onnx.TensorProto.BFLOAT16: "bfloat16", onnx.TensorProto.DOUBLE: "float64"}
    counts: dict[str, Counter] = {}
    for node in graph.node:
        name = floats.get(types.get(node.output[0]))
        if name is not None:
            counts.setdefault(name, Counter())[node.op_type] += 1
    return counts


def io_dtypes(model) -> dict[str, str]:
    """{"input": "float32", "output": "float32"} of an ONNX model's graph inputs and outputs."""
    import onnx

    return {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
            for v in [*model.graph.input, *model.graph.output]}


def onnx_metadata(model) -> dict[str, str]:
    """The metadata_props of an ONNX ModelProto as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model, values: dict[str, str]) -> None:
    """Set metadata_props entries of an ONNX ModelProto, replacing those of the same keys."""
    import onnx

    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
