"""Model file -> ONNX -> FP16 ONNX -> TensorRT engine (with a JSON sidecar), each one verified.

    model.safetensors --export_onnx---> <stem>-<hash>.onnx          fp32, dynamic N, H, W
                      --convert_fp16--> <stem>-<hash>.fp16.onnx     fp16 weights and compute,
                                                                    InstanceNorm (and Resize) in
                                                                    fp32 between Casts, fp32 I/O
                      --build_engine--> <stem>-<hash>-<precision>-<gpu>-trt<version>.engine + .json

Each file is written under a temporary name and renamed only once it passed its check:
ONNX vs PyTorch through onnxruntime (PSNR >= 45 dB), FP16 ONNX (>= 35 dB where onnxruntime's
CPU kernels run it), engine vs PyTorch FP32 on the GPU (>= 35 dB, no NaN, FP16 layers present).
TensorRT is imported only by the engine step: ONNX export works everywhere.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidgan.runtime.backends.trt_backend import (
    FORMAT,
    INPUT,
    OUTPUT,
    current_env,
    engines_dir,
    missing_requirements,
    sidecar_path,
)
from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import write_atomic, write_error

DYNAMIC_AXES = {name: {0: "batch", 2: "height", 3: "width"} for name in (INPUT, OUTPUT)}
ONNX_MIN_PSNR = 45.0
FP16_MIN_PSNR = 35.0
# (min, opt, max) as (H, W); --min/--opt/--max override single entries.
PRESETS = {
    "default": ((256, 256), (720, 1280), (1920, 1920)),  # landscape and portrait up to 1080p
    "360p": ((256, 256), (360, 640), (360, 640)),
    "720p": ((256, 256), (720, 1280), (720, 1280)),
    "1080p": ((256, 256), (1080, 1920), (1080, 1920)),
}
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png")


# --- ONNX -----------------------------------------------------------------------------------

def export_onnx(model_path: str | Path | None, onnx_path: str | Path, opset: int = 17) -> Path:
    """Export a model file's generator to ONNX: input "input", output "output", both NCHW
    float32 in [-1, 1] with dynamic batch, height and width (multiples of the model's multiple).

    Uses the TorchScript exporter (dynamo=False): it needs no onnxscript and exports
    ReflectionPad and nearest Upsample with fully dynamic H and W. The file is checked with
    onnx.checker (full check) and carries the source model's hash in its metadata_props
    (vidgan.model_hash, vidgan.arch, vidgan.multiple, vidgan.precision, vidgan.version).
    """
    import onnx
    import torch

    from vidgan import __version__
    from vidgan.core.modelfile import file_hash, load_model, resolve

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (InstanceNormalization and Resize), not {opset}")
    source = resolve(model_path)
    generator, info = load_model(source)
    side = _round_up(64, info.multiple)
    sample = torch.zeros(1, 3, side, side)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(onnx_path)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and folding notes
            torch.onnx.export(
                generator, (sample,), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=DYNAMIC_AXES,
            )
        model = onnx.load(str(tmp))
        fold_constants(model)
        _set_metadata(model, {
            "vidgan.model_hash": file_hash(source), "vidgan.arch": info.arch,
            "vidgan.multiple": str(info.multiple), "vidgan.version": __version__,
            "vidgan.precision": "fp32",
        })
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
        os.replace(tmp, onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
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
    _set_metadata(half, {"vidgan.precision": "fp16", "vidgan.io_dtype": "float32",
                         "vidgan.fp16_clamped": str(clamped)})
    onnx.checker.check_model(half, full_check=True)
    onnx.shape_inference.infer_shapes(half, check_type=True, strict_mode=True)
    fp16_path = Path(fp16_path)
    tmp = _partial(fp16_path)
    try:
        onnx.save(half, str(tmp))
        os.replace(tmp, fp16_path)
    finally:
        tmp.unlink(missing_ok=True)
    return fp16_path


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


def _set_metadata(model, values: dict[str, str]) -> None:
    import onnx

    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


# --- optimization profile (pure python) ------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """The input shapes an engine accepts: (H, W) ranges and the largest batch.

    TensorRT tunes kernels for `opt` at the largest batch; any shape in min..max runs.
    """

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]
    batch: int = 1

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes for IOptimizationProfile.set_shape."""
        return (1, 3, *self.min), (self.batch, 3, *self.opt), (self.batch, 3, *self.max)

    def as_dict(self) -> dict:
        low, opt, high = self.shapes()
        return {"min": list(low), "opt": list(opt), "max": list(high)}


def parse_shape(text: str | tuple[int, int], flag: str) -> tuple[int, int]:
    """'720x1280' -> (720, 1280); a one-line VidganError naming `flag` otherwise."""
    if isinstance(text, tuple):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise VidganError(f"{flag} takes HEIGHTxWIDTH, e.g. 720x1280, not {text!r}")
    return int(match[1]), int(match[2])


def make_profile(multiple: int, preset: str | None = None, min_shape=None, opt_shape=None,
                 max_shape=None, batch: int = 1) -> Profile:
    """A validated profile: a preset's shapes (rounded up to `multiple`), overridden by explicit
    HxW strings or tuples, which must already be multiples of `multiple`."""
    name = preset or "default"
    if name not in PRESETS:
        raise VidganError(f"unknown --profile {name!r}; choose one of: {', '.join(PRESETS)}")
    base = [tuple(_round_up(s, multiple) for s in hw) for hw in PRESETS[name]]
    given = {"--min": min_shape, "--opt": opt_shape, "--max": max_shape}
    shapes = [parse_shape(value, flag) if value is not None else default
              for (flag, value), default in zip(given.items(), base)]
    profile = Profile(*shapes, batch=batch)
    validate_profile(profile, multiple)
    return profile


def validate_profile(profile: Profile, multiple: int) -> None:
    """Raise a one-line VidganError unless batch >= 1, sides are positive multiples of
    `multiple`, and min <= opt <= max side by side."""
    if profile.batch < 1:
        raise VidganError(f"--batch must be at least 1, not {profile.batch}")
    named = {"--min": profile.min, "--opt": profile.opt, "--max": profile.max}
    for flag, (h, w) in named.items():
        for side in (h, w):
            if side <= 0 or side % multiple:
                fix = f"{_round_up(max(h, 1), multiple)}x{_round_up(max(w, 1), multiple)}"
                raise VidganError(f"{flag} {h}x{w}: sides must be positive multiples of "
                                  f"{multiple} (the model's multiple); try {fix}")
    for axis in (0, 1):
        if not profile.min[axis] <= profile.opt[axis] <= profile.max[axis]:
            raise VidganError(f"profile shapes must satisfy min <= opt <= max in height and width; "
                              f"got min {_hw(profile.min)}, opt {_hw(profile.opt)}, "
                              f"max {_hw(profile.max)}")


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# --- verification ---------------------------------------------------------------------------

def psnr(a, b, peak_to_peak: float = 2.0) -> float:
    """Worst per-image PSNR in dB between two (N, C, H, W) batches in [-1, 1] (tensors or arrays).

    NaN anywhere gives NaN; identical images give inf.
    """
    a = np.asarray(a.float().cpu() if hasattr(a, "float") else a, dtype=np.float64)
    b = np.asarray(b.float().cpu() if hasattr(b, "float") else b, dtype=np.float64)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    if np.isnan(mse).any():
        return float("nan")
    with np.errstate(divide="ignore"):
        return float(np.min(10 * np.log10(peak_to_peak**2 / mse)))


def sample_images(n: int = 2, size: tuple[int, int] = (256, 256), folder: Path | None = None):
    """(n, 3, H, W) float32 CPU tensor in [-1, 1]: photographs resized to `size`.

    From `folder` (`vidgan export --photos DIR`), else the demo's built-in sample photographs
    (vidgan.pipelines.demo.sample_photos); more than there are photos repeats them mirrored, then again.
    """
    import torch

    photos = _folder_photos(folder) if folder is not None else _builtin_photos()
    picks = [photos[i % len(photos)] for i in range(n)]
    mirrored = [i // len(photos) % 2 == 1 for i in range(n)]
    return torch.stack([_as_input(p[:, ::-1] if m else p, size) for p, m in zip(picks, mirrored)])


def images_source(folder: Path | None = None) -> str:
    """Words for the report: where sample_images takes its images from."""
    return f"photos in {folder}" if folder is not None else "the built-in sample photos"


def check_photos(folder: Path | None) -> None:
    """--photos DIR: a folder holding at least one JPEG or PNG (checked before any work)."""
    if folder is not None:
        _photo_files(folder)


def _photo_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise VidganError(f"--photos {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS)
    if not files:
        raise VidganError(f"--photos {folder} holds no {'/'.join(PHOTO_EXTENSIONS)} images")
    return files


def _folder_photos(folder: Path) -> list:
    import cv2

    photos = []
    for path in _photo_files(folder):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VidganError(f"can't read image {path}")
        photos.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return photos


def _builtin_photos() -> list:
    from vidgan.pipelines.demo import sample_photos

    return sample_photos()


def _as_input(rgb, size: tuple[int, int]):
    import cv2
    import numpy as np
    import torch

    small = cv2.resize(np.ascontiguousarray(rgb), size[::-1], interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1).float().div(127.5).sub(1.0)


def onnx_psnr(onnx_path: Path, reference, images) -> float:
    """PSNR of the ONNX model through onnxruntime (CPU) against `reference` outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run([OUTPUT], {INPUT: images.numpy()})[0]
    return psnr(out, reference)


def torch_reference(generator, images, device: str = "cpu"):
    """FP32 PyTorch outputs (TF32 off) for `images`, on the CPU; `generator` is left as it was."""
    import copy

    import torch

    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            return copy.deepcopy(generator).to(device).float()(images.to(device)).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


# --- TensorRT ------------------------------------------------------------------------------

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
    _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
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


def verify_engine(backend, generator, profile: Profile, images_folder: Path | None = None) -> dict:
    """Run the engine on photos at two shapes in its profile and compare with PyTorch FP32.

    Returns {"psnr_db", "shapes", "images"}; raises VidganError on NaN or PSNR < 35 dB.
    """
    side = _round_up(256, backend.multiple)
    small = tuple(min(max(side, lo), hi) for lo, hi in zip(profile.min, profile.max))
    checks = [(min(4, profile.batch), small), (profile.batch, profile.opt)]
    worst, shapes = float("inf"), []
    for batch, size in checks:
        images = sample_images(batch, size, images_folder)
        reference = torch_reference(generator, images, "cuda")
        x = images.to(backend.device, backend.input_dtype)
        out = backend(x).float().cpu()  # .cpu() waits for the engine
        value = psnr(out, reference)
        shapes.append(list(x.shape))
        if not value >= FP16_MIN_PSNR:  # also catches NaN
            raise VidganError(f"engine verification failed at {list(x.shape)}: PSNR {value:.1f} dB "
                              f"vs PyTorch FP32 (needs {FP16_MIN_PSNR:.0f}); the engine was not kept")
        worst = min(worst, value)
    return {"psnr_db": round(worst, 2), "shapes": shapes, "images": images_source(images_folder)}


# --- the `vidgan export` command ------------------------------------------------------------

def export_model(
    model: str | Path | None = None,
    out: str | Path | None = None,
    *,
    onnx_only: bool = False,
    fp16: bool = False,
    preset: str | None = None,
    min_shape: str | None = None,
    opt_shape: str | None = None,
    max_shape: str | None = None,
    batch: int = 1,
    workspace_gib: float = 4.0,
    opt_level: int = 3,
    overwrite: bool = False,
    photos: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """ONNX (and FP16 ONNX with `fp16`), then unless `onnx_only` a TensorRT engine; each checked.

    out: the folder for them (default: the engines folder of the per-user cache).
    photos: a folder of JPEG/PNG photos to verify on (default: the built-in sample photos).
    Returns the files written (or reused). User errors raise VidganError before any work; a
    file appears only once it passed its check, and Ctrl-C says which ones are there.
    """
    from vidgan.core.modelfile import file_hash, read_info, resolve

    source = resolve(model)
    info = read_info(source)
    profile = make_profile(info.multiple, preset, min_shape, opt_shape, max_shape, batch)
    if not 0 <= opt_level <= 5:
        raise VidganError(f"--opt-level must be 0..5, not {opt_level}")
    if not 0 < workspace_gib < float("inf"):
        raise VidganError(f"--workspace must be a positive number of GiB, not {workspace_gib}")
    if not onnx_only and (missing := missing_requirements()):
        raise VidganError(missing)
    photos = Path(photos) if photos is not None else None
    check_photos(photos)
    out = Path(out) if out is not None else engines_dir()
    _check_out(out)
    base = out / f"{source.stem}-{file_hash(source)}"
    onnx_path, fp16_path = (base.with_name(base.name + ext) for ext in (".onnx", ".fp16.onnx"))
    engine_path = None if onnx_only else _engine_path(base, "fp16" if fp16 else "fp32")
    finals = [onnx_path, fp16_path][: 1 + fp16] if onnx_only else [engine_path]
    existing = [p for p in finals if p.exists()]
    if existing and not overwrite:
        raise VidganError(f"{existing[0]} exists; pass --overwrite to replace it")

    try:
        written = _onnx_files(source, onnx_path, fp16_path if fp16 else None,
                              overwrite or onnx_only, photos, log)
        if onnx_only:
            return written
        return [*written, _engine(source, info, written[-1], engine_path, profile, workspace_gib,
                                  opt_level, photos, log)]
    except OSError as exc:  # a full disk, or a folder that refuses the file after all
        raise write_error(exc, exc.filename or out) from None
    except KeyboardInterrupt:
        there = [p.name for p in (onnx_path, fp16_path, engine_path) if p is not None and p.exists()]
        kept = f"{', '.join(there)} in {out}" if there else "no file"
        raise Interrupted(f"interrupted: kept {kept} (each one complete and checked)") from None


def _check_out(out: Path) -> None:
    """--out: a folder that exists or can be made, and takes files."""
    if out.exists() and not out.is_dir():
        raise VidganError(f"--out {out} is a file; give a folder for the exported files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidganError(f"cannot create the output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise VidganError(f"cannot write to {out}")


def _engine_path(base: Path, precision: str) -> Path:
    env = current_env()
    gpu = re.sub(r"[^a-z0-9]+", "-", env["gpu"].lower()).strip("-")
    return base.parent / f"{base.name}-{precision}-{gpu}-trt{env['tensorrt']}.engine"


def _onnx_files(source: Path, onnx_path: Path, fp16_path: Path | None, rebuild: bool,
                photos: Path | None, log: Callable[[str], None]) -> list[Path]:
    """Write (or, unless `rebuild`, reuse) the FP32 ONNX and optionally the FP16 one, each checked
    against PyTorch through onnxruntime on the CPU."""
    import onnx

    from vidgan.core.modelfile import load_model

    generator, info = load_model(source)
    images = sample_images(2, (_round_up(256, info.multiple),) * 2, photos)
    reference = torch_reference(generator, images)
    written = [onnx_path]
    if rebuild or not onnx_path.exists():
        with _step("exporting ONNX", log):
            export_onnx(source, onnx_path)
        _checked(onnx_path, onnx_psnr(onnx_path, reference, images), ONNX_MIN_PSNR, log,
                 f"{images_source(photos)}, onnxruntime CPU vs PyTorch")
    else:
        log(f"reusing {onnx_path}")
    if fp16_path is None:
        return written
    written.append(fp16_path)
    if rebuild or not fp16_path.exists():
        with _step("converting to FP16", log):
            convert_fp16(onnx_path, fp16_path)
        half = onnx.load(str(fp16_path))
        kinds = {dtype: sorted(ops) for dtype, ops in op_precisions(half).items()}
        clamped = onnx_metadata(half).get("vidgan.fp16_clamped", "0")
        log(f"FP16 graph: {json.dumps(kinds)}; I/O {io_dtypes(half)}; {clamped} weights clamped "
            "into fp16's range")
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph
        from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as Unsupported

        try:
            value = onnx_psnr(fp16_path, reference, images)
        except (Unsupported, InvalidGraph, Fail) as exc:  # a build without some fp16 CPU kernels
            log(f"onnxruntime's CPU kernels can't run the FP16 graph ({str(exc).splitlines()[0]}); "
                "it is checked on the GPU instead")
        else:
            _checked(fp16_path, value, FP16_MIN_PSNR, log, "onnxruntime CPU vs PyTorch FP32")
    else:
        log(f"reusing {fp16_path}")
    return written


def _checked(path: Path, value: float, needed: float, log: Callable[[str], None], what: str) -> None:
    if not value >= needed:  # also catches NaN
        path.unlink(missing_ok=True)
        raise VidganError(f"{path.name} failed its check: PSNR {value:.1f} dB ({what}), needs "
                          f"{needed:.0f}; the file was removed")
    log(f"wrote {path} (PSNR {value:.1f} dB, {what})")


def _engine(source: Path, info, onnx_path: Path, engine_path: Path, profile: Profile,
            workspace_gib: float, opt_level: int, photos: Path | None,
            log: Callable[[str], None]) -> Path:
    """Build, inspect and verify an engine; write it and then its sidecar, only if it passed."""
    import torch

    from vidgan import __version__
    from vidgan.runtime.backends.trt_backend import TensorRTBackend
    from vidgan.core.modelfile import file_hash, load_model

    precision = "fp16" if onnx_path.name.endswith(".fp16.onnx") else "fp32"
    started = time.perf_counter()
    with _step(f"building the TensorRT {precision} engine (minutes)", log):
        plan = build_engine(onnx_path, profile, engine_path.parent / "timing.cache",
                            workspace_gib, opt_level, log)
    sidecar = {
        "format": FORMAT, **current_env(), "precision": precision, "profile": profile.as_dict(),
        "model_hash": file_hash(source), "model_file": source.name, "arch": info.arch,
        "multiple": info.multiple, "vidgan": __version__, "onnx": onnx_path.name,
        "workspace_gib": workspace_gib, "opt_level": opt_level,
        "build_seconds": round(time.perf_counter() - started, 1),
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    backend = TensorRTBackend(plan, sidecar, torch.device("cuda"))
    sidecar["input_dtype"] = str(backend.input_dtype).removeprefix("torch.")
    sidecar["output_dtype"] = str(backend.output_dtype).removeprefix("torch.")
    sidecar["layers"] = dict(engine_layers(backend.engine))
    layers = sidecar["layers"]
    if precision == "fp16" and layers.get("fp32") and not layers.get("fp16"):
        raise VidganError(f"the engine runs no layer in FP16 ({layers}); not kept")
    if not layers.get("fp16") and not layers.get("fp32"):
        log(f"warning: could not read layer precisions from TensorRT's inspector ({layers})")
    generator, _ = load_model(source)
    sidecar["verification"] = verify_engine(backend, generator, profile, photos)
    _write_atomic(engine_path, plan)
    _write_atomic(sidecar_path(engine_path), json.dumps(sidecar, indent=2).encode() + b"\n")
    summary = ", ".join(f"{n} {kind}" for kind, n in Counter(layers).most_common())
    log(f"wrote {engine_path} ({summary} layers; PSNR {sidecar['verification']['psnr_db']} dB vs "
        f"PyTorch FP32; built in {sidecar['build_seconds']} s)")
    return engine_path


@contextmanager
def _step(what: str, log: Callable[[str], None]):
    """A spinner with elapsed time on a terminal, a plain start line otherwise."""
    import sys

    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(f"{what}..."):
            yield
    else:
        log(f"{what}...")
        yield


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
