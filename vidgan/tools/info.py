"""`vidgan info`: what a user debugging a setup needs to see, and what a model file holds.

Every probe is an import or a version query (no benchmarks), so the report takes seconds. A
missing optional library is reported with the command that installs it, never as an error.
"""

from __future__ import annotations

import importlib
import json
import platform
from fractions import Fraction
from pathlib import Path

import av
import cv2
import torch
from safetensors import safe_open

import vidgan
from vidgan.core import modelfile, models
from vidgan.core.cache import CACHE_ENV, cache_dir, engines_dir
from vidgan.core.errors import VidganError
from vidgan.runtime.backends.ort_backend import (
    CUDA_PROVIDER,
    cuda_provider_error,
    onnxruntime_distributions,
    shadowed_note,
)
from vidgan.runtime.export.engines import NO_TRT_FASTEST, tensorrt_install
from vidgan.runtime.video import nvenc_available

PROBED_ENCODERS = ("libx264", "hevc", "h264_nvenc", "hevc_nvenc")


def print_report(model: str | Path | None = None) -> None:
    """Print the environment report; with `model` (a model file or generator name), its summary."""
    model_rows = describe_model(model) if model is not None else None  # a bad --model fails first
    _print_rows(environment())
    if model_rows:
        print()
        _print_rows(model_rows)


def environment() -> list[tuple[str, str]]:
    """(label, value) rows: Python, vidgan, the deep-learning stack, codecs, capture and the GPU."""

    rows = [
        ("python", f"{platform.python_version()} ({platform.platform()})"),
        ("vidgan", vidgan.__version__),
    ]
    rows += _torch_rows()
    rows += [("tensorrt", _tensorrt()), ("onnxruntime", _onnxruntime())]
    rows += _pyav_rows()
    rows += [
        ("opencv", _opencv()),
        ("mss", _version("mss")),
        ("pyvirtualcam", _version("pyvirtualcam", "optional: pip install 'vidgan[virtualcam]'")),
        ("cache", _cache()),
    ]
    return rows + _default_models()


def _default_models() -> list[tuple[str, str]]:
    """Which bundled model each command runs here when given no --model or --quality."""

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for label, realtime in (("model: live, demo", True), ("model: render, stylize", False)):
        try:
            path = modelfile.choose(None, None, device, realtime)
        except VidganError as exc:
            rows.append((label, exc.message))
            continue
        quality = next(q for q in modelfile.QUALITIES if modelfile.bundled_model(q) == path)
        rows.append((label, f"{path.name} (--quality {quality}) on the {device.type.upper()}"))
    return rows


def _cache() -> str:
    """Where vidgan keeps what it builds by itself: ONNX exports and TensorRT engines."""

    return (f"{cache_dir()} (${CACHE_ENV} moves it); ONNX exports and TensorRT engines in "
            f"{engines_dir()}")


def _torch_rows() -> list[tuple[str, str]]:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    rows = [
        ("torch", torch.__version__),
        ("CUDA (torch build)", torch.version.cuda or "none (CPU-only build of torch)"),
        ("cuDNN", _cudnn_version(cudnn) if cudnn else "not available"),
    ]
    if not torch.cuda.is_available():
        return rows + [("GPU", "no CUDA GPU visible to torch")]
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        memory = f"{p.total_memory / 2**30:.1f} GiB"
        rows.append((f"GPU {i}", f"{p.name}, {memory}, compute capability {p.major}.{p.minor}"))
    rows.append(
        ("bf16 autocast", "yes" if torch.cuda.is_bf16_supported() else "no (fp16 + GradScaler)")
    )
    return rows


def _cudnn_version(v: int) -> str:
    """cuDNN's integer version: major*10000 + minor*100 + patch since 9, major*1000 + ... before."""
    if v >= 90000:
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return f"{v // 1000}.{v // 100 % 10}.{v % 100}"


def _tensorrt() -> str:
    try:
        import tensorrt
    except ImportError:
        return f"not installed: {tensorrt_install()}; {NO_TRT_FASTEST}"
    except (OSError, RuntimeError) as exc:  # installed, but its CUDA libraries fail to load
        return f"installed but fails to import: {exc}"
    return tensorrt.__version__


def _onnxruntime() -> str:
    installed = onnxruntime_distributions()
    try:
        import onnxruntime
    except ImportError as exc:
        if installed:  # one of two builds sharing the folder was uninstalled, taking shared files
            return (f"installed ({', '.join(n for n, _ in installed)}) but fails to import ({exc}); "
                    "pip install --force-reinstall --no-deps onnxruntime-gpu (or onnxruntime)")
        return "not installed: pip install onnxruntime (or 'vidgan[gpu]' for CUDA)"
    providers = onnxruntime.get_available_providers()
    notes = [shadowed_note(installed, providers)]

    # A GPU build lists the CUDA provider, which still loads only where its libraries are found
    if CUDA_PROVIDER in providers and torch.cuda.is_available():
        error = cuda_provider_error(Path(onnxruntime.__file__).parent / "capi")
        notes.append(f"its CUDA provider can't load ({error})" if error else None)
    return f"{onnxruntime.__version__}, providers: {', '.join(providers)}" + "".join(
        f"; {note}" for note in notes if note)


def _pyav_rows() -> list[tuple[str, str]]:
    encoders = [name for name in PROBED_ENCODERS if _has_encoder(av, name)]
    if not nvenc_available():  # FFmpeg lists them anyway; they fail without NVIDIA's driver
        encoders = [e for e in encoders if "nvenc" not in e] + ["no NVENC (no NVIDIA GPU)"]
    libavcodec = av.library_versions["libavcodec"]
    return [
        (
            "PyAV",
            f"{av.__version__} (FFmpeg libavcodec {'.'.join(map(str, libavcodec))})",
        ),
        ("H.264 encoding", _h264_check(av)),
        (
            "other encoders",
            ", ".join(e for e in encoders if e != "libx264")
            or "none of " + ", ".join(PROBED_ENCODERS[1:]),
        ),
    ]


def _has_encoder(av, name: str) -> bool:
    try:
        av.Codec(name, "w")
        return True
    except ValueError:  # av.codec.codec.UnknownCodecError
        return False


def _h264_check(av) -> str:
    """Open a real H.264 encoder: the codec being listed is not proof that it works."""

    for name in ("libx264", "h264"):
        try:
            ctx = av.CodecContext.create(name, "w")
            ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 64, "yuv420p", Fraction(1, 25)
            ctx.open()
            return f"yes ({ctx.codec.name})"
        except (av.FFmpegError, ValueError) as exc:
            error = exc
    return f"NO: {error}; install a PyAV wheel built with libx264"


def _opencv() -> str:
    gui = _opencv_gui(cv2.getBuildInformation())
    if gui is None:
        return f"{cv2.__version__}, no GUI backend (headless: `vidgan live` cannot open a window)"
    return f"{cv2.__version__}, GUI: {gui}"


def _opencv_gui(build_info: str) -> str | None:
    """The GUI backend named in cv2.getBuildInformation() ("QT5", "GTK3", ...), or None."""
    for line in build_info.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "GUI":
            value = value.strip()
            return None if value in ("", "NONE", "NO") else value
    return None


def _version(module: str, hint: str = "") -> str:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return f"not installed ({hint or f'pip install {module}'})"
    return getattr(mod, "__version__", "installed")


def describe_model(spec: str | Path) -> list[tuple[str, str]]:
    """(label, value) rows for a model file or a registry name: architecture, size, GFLOPs."""

    info = None
    if Path(spec).is_file():
        info = modelfile.read_info(spec)
        arch, kwargs = info.arch, info.kwargs
    elif str(spec) in models.GENERATORS:
        arch, kwargs = str(spec), models.default_kwargs(str(spec))
    else:
        raise VidganError(
            f"--model {spec}: no such file, and not a generator name "
            f"({', '.join(models.GENERATORS)})"
        )
    with torch.device("meta"):  # shapes only: no memory, no weights read
        net = models.build(arch, **kwargs)
    multiple = net.multiple
    rows = [
        ("model", str(spec)),
        ("architecture", f"{arch} {json.dumps(kwargs)}"),
        ("parameters", f"{models.count_parameters(net) / 1e6:.2f} M"),
        ("spatial multiple", f"{multiple} (other sizes are padded by reflection)"),
    ]
    for h, w in ((256, 256), (720, 1280)):
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        padded = "" if (ph, pw) == (h, w) else f" (padded to {pw}x{ph})"
        rows.append((f"GFLOP at {w}x{h}", f"{models.gflops(net, ph, pw):.1f}{padded}"))
    if info is not None:
        rows += _file_rows(info)
    return rows


def _file_rows(info) -> list[tuple[str, str]]:
    with safe_open(str(info.path), framework="pt") as f:
        dtypes = sorted({f.get_slice(k).get_dtype() for k in f.keys()})  # noqa: SIM118
    rows = [
        ("direction", info.direction),
        ("file", f"{info.path.stat().st_size / 2**20:.1f} MiB, weights {'/'.join(dtypes)}"),
    ]
    t = info.training
    teacher = t.get("distilled_from")
    if teacher:
        origin = f"{teacher['file']} ({teacher['arch']}, sha256[:16] {teacher['hash']})"
        rows.append(("distilled from", origin))
    if t:
        epochs = "" if teacher else f"{t.get('epochs', '?')} epochs, "
        summary = f"{epochs}{t.get('steps', '?')} steps"
        if "train_seconds" in t:
            summary += f", {t['train_seconds'] / 3600:.1f} h on {t.get('device', '?')}"
        rows.append(("training", summary))
        if t.get("final_losses"):
            rows.append(
                ("final losses", ", ".join(f"{k} {v}" for k, v in t["final_losses"].items()))
            )
    cfg = info.recipe
    if cfg:
        recipe = (
            f"{cfg.get('recipe') or '-'}: crop {cfg.get('crop')}, batch {cfg.get('batch_size')}"
        )
        losses = _distill_losses(cfg) if teacher else f"{cfg.get('gan_loss')} loss"
        rows.append(("recipe", f"{recipe}, {losses}"))
    return rows


def _distill_losses(recipe: dict) -> str:
    losses = "pixel + gradient + temporal L1"
    if recipe.get("lambda_adv"):
        against = "real paintings" if recipe.get("adversary") == "paintings" else "the teacher's outputs"
        losses += f" + adversarial against {against}"
    if recipe.get("lambda_fm"):
        losses += " + feature matching"
    return losses


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
