"""`vidgan export`: model file -> ONNX -> FP16 ONNX -> TensorRT engine, each one verified."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as Unsupported

from vidgan import __version__
from vidgan.core.cache import engines_dir
from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.files import write_atomic, write_error
from vidgan.core.modelfile import file_hash, load_model, read_info, resolve
from vidgan.core.progress import status
from vidgan.runtime.backends.trt_backend import TensorRTBackend
from vidgan.runtime.export.engines import FORMAT, current_env, missing_requirements, sidecar_path
from vidgan.runtime.export.fp16 import convert_fp16
from vidgan.runtime.export.onnx import (
    export_onnx,
    graph_stem,
    io_dtypes,
    onnx_metadata,
    op_precisions,
)
from vidgan.runtime.export.profile import Profile, make_profile, round_up
from vidgan.runtime.export.tensorrt import build_engine, engine_layers
from vidgan.runtime.export.verify import (
    FP16_MIN_PSNR,
    ONNX_MIN_PSNR,
    images_source,
    onnx_psnr,
    photo_files,
    sample_images,
    torch_reference,
    verify_engine,
)


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
    if photos is not None:
        photo_files(photos)  # a folder with images, checked before any work
    out = Path(out) if out is not None else engines_dir()
    _check_out(out)
    base = out / graph_stem(source)
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
    generator, info = load_model(source)
    images = sample_images(2, (round_up(256, info.multiple),) * 2, photos, info.normalization)
    reference = torch_reference(generator, images)
    written = [onnx_path]
    if rebuild or not onnx_path.exists():
        with status("exporting ONNX", log):
            export_onnx(source, onnx_path)
        _checked(onnx_path, onnx_psnr(onnx_path, reference, images), ONNX_MIN_PSNR, log,
                 f"{images_source(photos)}, onnxruntime CPU vs PyTorch")
    else:
        log(f"reusing {onnx_path}")
    if fp16_path is None:
        return written
    written.append(fp16_path)
    if rebuild or not fp16_path.exists():
        with status("converting to FP16", log):
            convert_fp16(onnx_path, fp16_path)
        half = onnx.load(str(fp16_path))
        kinds = {dtype: sorted(ops) for dtype, ops in op_precisions(half).items()}
        clamped = onnx_metadata(half).get("vidgan.fp16_clamped", "0")
        log(f"FP16 graph: {json.dumps(kinds)}; I/O {io_dtypes(half)}; {clamped} weights clamped "
            "into fp16's range")
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
    precision = "fp16" if onnx_path.name.endswith(".fp16.onnx") else "fp32"
    started = time.perf_counter()
    with status(f"building the TensorRT {precision} engine (minutes)", log):
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
    sidecar["verification"] = verify_engine(backend, generator, profile, photos, info.normalization)
    write_atomic(engine_path, plan)
    write_atomic(sidecar_path(engine_path), json.dumps(sidecar, indent=2) + "\n")
    summary = ", ".join(f"{n} {kind}" for kind, n in Counter(layers).most_common())
    log(f"wrote {engine_path} ({summary} layers; PSNR {sidecar['verification']['psnr_db']} dB vs "
        f"PyTorch FP32; built in {sidecar['build_seconds']} s)")
    return engine_path
