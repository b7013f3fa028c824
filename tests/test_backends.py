"""Backends: each matches the PyTorch fp32 reference through the Stylizer; ONNX caching; auto;
the user errors. GPU paths carry the `gpu` marker and skip without a CUDA GPU."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import onnxruntime
import pytest
import torch
import torch.nn.functional as F

from vidgan.core import modelfile, models
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import load_model
from vidgan.runtime.backends import load_backend, ort_backend
from vidgan.runtime.backends import ort_backend as export  # where the ONNX export is called
from vidgan.runtime.backends.ort_backend import OnnxRuntimeBackend
from vidgan.runtime.stylizer import Stylizer
from vidgan.tools.bench import model as bench_model
from vidgan.tools.bench import results
from vidgan.tools.bench import run as bench

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")
ORT_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
needs_ort_cuda = pytest.mark.skipif(not (CUDA and ORT_CUDA), reason="needs onnxruntime-gpu, a GPU")
SIZES = [(2, 37, 53), (1, 61, 30)]  # odd sizes: padded to the model's multiple, cropped back


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    """ONNX exports go to a temporary engines/ folder, not the repository's."""
    folder = tmp_path / "engines"
    monkeypatch.setattr(ort_backend, "engines_dir", lambda: folder)
    return folder


def reference(model_path, img: np.ndarray) -> np.ndarray:
    """The generator in PyTorch fp32, with pre/post-processing written out independently."""
    generator, info = load_model(model_path)
    x = torch.from_numpy(img.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    h, w = img.shape[1:3]
    x = F.pad(x, (0, -w % info.multiple, 0, -h % info.multiple), mode="reflect")
    with torch.no_grad():
        y = generator(x)[..., :h, :w]
    return ((y.numpy().transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def random_frames(n: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(h * w).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def check_against_reference(backend, model_path, min_psnr: float, max_diff: int | None) -> None:
    stylizer = Stylizer(backend)
    for n, h, w in SIZES:
        img = random_frames(n, h, w)
        out = stylizer(img)
        assert out.shape == (n, h, w, 3) and out.dtype == torch.uint8
        assert out.device == backend.device
        got, ref = out.cpu().numpy(), reference(model_path, img)
        assert psnr(got, ref) >= min_psnr
        if max_diff is not None:
            assert np.abs(got.astype(int) - ref).max() <= max_diff


@pytest.mark.parametrize("name", ["torch", "onnxruntime", "auto"])
def test_cpu_backends_match_the_pytorch_reference(tiny_model, name):
    backend = load_backend(tiny_model, name, "cpu")
    check_against_reference(backend, tiny_model, min_psnr=50, max_diff=1)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_backend_call_keeps_shape_dtype_and_device(tiny_model, name):
    backend = load_backend(tiny_model, name, "cpu")
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    y = backend(x.to(backend.input_dtype))
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert y.abs().max() <= 1  # the generator ends in tanh
    assert backend.multiple == 4


def test_auto_picks_onnxruntime_on_the_cpu_and_names_it(tiny_model):
    assert load_backend(tiny_model, "auto", "cpu").name == "onnxruntime-cpu"
    assert load_backend(tiny_model, "torch", "cpu").name == "torch-cpu-fp32"


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory):
    """A model file holding a very small real-time student (random weights)."""
    from vidgan.core import models
    from vidgan.core.modelfile import save_model

    torch.manual_seed(0)
    kwargs = {"width": 8, "n_blocks": 1, "n_context": 1, "expand": 2}
    path = tmp_path_factory.mktemp("models") / "student.safetensors"
    return save_model(path, models.build("realtime", **kwargs), "realtime", kwargs)


@pytest.fixture
def int8_bound_for_random_weights(monkeypatch):
    """An int8 bound that a tiny untrained student passes: its int8 output lands 29-39 dB from
    fp32 depending on the seed and the library versions, astride the real 40 dB bound (which
    the refusal test checks on its own)."""
    from vidgan.runtime.export import int8

    monkeypatch.setattr(int8, "INT8_MIN_PSNR", 25.0)
    return 25.0


def test_int8_runs_the_student_close_to_fp32_only_when_asked(tiny_student,
                                                             int8_bound_for_random_weights):
    int8 = load_backend(tiny_student, "onnxruntime", "cpu", "int8")
    assert int8.name == "onnxruntime-cpu-int8"
    check_against_reference(int8, tiny_student, min_psnr=int8_bound_for_random_weights,
                            max_diff=None)
    assert load_backend(tiny_student, "auto", "cpu").name == "onnxruntime-cpu"


def test_int8_that_strays_from_fp32_is_refused_once_and_for_all(tiny_student, monkeypatch):
    from vidgan.runtime.export import int8

    monkeypatch.setattr(int8, "INT8_MIN_PSNR", 500.0)  # no int8 graph is that close
    with pytest.raises(VidganError, match="too far from fp32"):
        load_backend(tiny_student, "onnxruntime", "cpu", "int8")
    calls = []
    monkeypatch.setattr(ort_backend, "quantize_int8", lambda *a: calls.append(a))
    with pytest.raises(VidganError, match="too far from fp32"):
        load_backend(tiny_student, "onnxruntime", "cpu", "int8")
    assert calls == []  # the refusal is remembered: no second quantization


def test_quantizing_keeps_the_quantizers_notes_off_the_screen(tiny_model, tmp_path, caplog):
    from vidgan.runtime.export.int8 import quantize_int8

    quantize_int8(ort_backend.cached_onnx(tiny_model), tmp_path / "tiny.int8.onnx", min_psnr=0)
    assert not [r for r in caplog.records if "out-of-range" in r.getMessage()]


@pytest.mark.parametrize("backend, device, message", [
    ("torch", "cpu", "int8 runs through onnxruntime"),
    ("onnxruntime", "cuda", "int8 graphs run on the CPU"),
])
def test_int8_elsewhere_is_one_clear_error(tiny_student, backend, device, message):
    from vidgan.runtime.backends import BACKENDS

    with pytest.raises(VidganError, match=message):
        BACKENDS[backend].load(tiny_student, torch.device(device), "int8")


def test_torch_options_make_auto_mean_torch(tiny_model, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **_: model)  # inductor loads slowly
    backend = load_backend(tiny_model, "auto", "cpu", compile=True)
    assert backend.name == "torch-cpu-fp32-compiled"


def test_onnx_is_exported_once_and_reused(tiny_model, onnx_cache, monkeypatch):
    calls = []
    real = export.export_onnx
    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: calls.append(a) or real(*a, **k))
    load_backend(tiny_model, "onnxruntime", "cpu")
    (onnx_file,) = onnx_cache.glob("*.onnx")
    mtime = onnx_file.stat().st_mtime_ns
    load_backend(tiny_model, "onnxruntime", "cpu")
    assert len(calls) == 1 and onnx_file.stat().st_mtime_ns == mtime
    assert onnx_file.name.startswith(tiny_model.stem + "-")


def test_changed_weights_get_their_own_onnx(tiny_model, onnx_cache, tmp_path):
    from vidgan.core.modelfile import save_model

    generator, info = load_model(tiny_model)
    with torch.no_grad():
        next(generator.parameters()).add_(0.5)
    other = save_model(tmp_path / tiny_model.name, generator, info.arch, info.kwargs)
    load_backend(tiny_model, "onnxruntime", "cpu")
    backend = load_backend(other, "onnxruntime", "cpu")
    assert len(list(onnx_cache.glob("*.onnx"))) == 2
    check_against_reference(backend, other, min_psnr=50, max_diff=1)


def test_onnx_cache_is_the_users_never_the_models_folder(tiny_model, tmp_path, monkeypatch):
    monkeypatch.undo()  # the real engines_dir(): VIDGAN_ENGINES unset, the cache from XDG
    monkeypatch.delenv("VIDGAN_ENGINES")
    monkeypatch.delenv("VIDGAN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    model = tmp_path / "models" / tiny_model.name
    model.parent.mkdir()
    model.write_bytes(tiny_model.read_bytes())
    load_backend(model, "onnxruntime", "cpu")
    assert sorted(p.name for p in model.parent.iterdir()) == [model.name]  # nothing beside it
    assert len(list((tmp_path / "xdg" / "vidgan" / "engines").glob(f"{model.stem}-*.onnx"))) == 1
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "mine"))
    load_backend(model, "onnxruntime", "cpu")
    assert len(list((tmp_path / "mine" / "engines").glob("*.onnx"))) == 1


def test_unwritable_onnx_cache_is_a_user_error(tiny_model, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(ort_backend, "engines_dir", lambda: blocker / "engines")  # mkdir fails
    with pytest.raises(VidganError, match="VIDGAN_CACHE"):
        load_backend(tiny_model, "onnxruntime", "cpu")


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tensorflow"}, "unknown backend 'tensorflow'"),
    ({"precision": "int4"}, "unknown precision 'int4'"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"backend": "torch", "precision": "fp16", "device": "cpu"}, "fp16 runs on a CUDA GPU"),
    ({"backend": "onnxruntime", "precision": "fp16", "device": "cpu"}, "fp16 graphs on CUDA only"),
    ({"backend": "torch", "device": "cpu", "cuda_graphs": True}, "CUDA graphs need a CUDA GPU"),
    ({"backend": "onnxruntime", "device": "cpu", "compile": True}, "apply to the torch backend"),
])
def test_user_errors_are_one_line(tiny_model, kwargs, message):
    with pytest.raises(VidganError) as info:
        load_backend(tiny_model, **kwargs)
    assert message in info.value.message and "\n" not in info.value.message


@pytest.mark.skipif(CUDA, reason="a CUDA GPU is visible")
def test_cuda_without_a_gpu_is_a_user_error(tiny_model):
    with pytest.raises(VidganError, match="no CUDA GPU is visible"):
        load_backend(tiny_model, "torch", "cuda")


@pytest.mark.skipif(ORT_CUDA, reason="onnxruntime-gpu is installed")
def test_onnxruntime_cuda_without_onnxruntime_gpu_is_a_user_error(tiny_model):
    onnx_path = ort_backend.cached_onnx(tiny_model)
    with pytest.raises(VidganError, match="onnxruntime-gpu"):
        OnnxRuntimeBackend(onnx_path, 4, torch.device("cuda"))


def test_a_cuda_session_that_fell_back_to_the_cpu_says_why(tmp_path):
    capi = tmp_path / "capi"
    capi.mkdir()
    assert ort_backend.cuda_fallback(["CUDAExecutionProvider", "CPUExecutionProvider"], capi) is None
    why = ort_backend.cuda_fallback(["CPUExecutionProvider"], capi)
    assert "could not start its CUDA provider" in why and "is missing" in why
    # A provider library that doesn't load: the loader's own words are the reason.
    (capi / "libonnxruntime_providers_cuda.so").write_bytes(bytes(4096))
    why = ort_backend.cuda_fallback(["CPUExecutionProvider"], capi)
    assert "invalid ELF header" in why and "--backend torch" in why and "\n" not in why


def write_distribution(site, name: str, version: str, top: str | None = "onnxruntime") -> None:
    """An installed distribution's metadata; with top=None only a RECORD names its files."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if top is None:
        (info / "RECORD").write_text("onnxruntime/__init__.py,,\nonnxruntime/capi/x.so,,\n")
    else:
        (info / "top_level.txt").write_text(top + "\n")


def test_two_onnxruntime_builds_in_one_folder_are_explained(tmp_path):
    site = tmp_path / "site-packages"
    write_distribution(site, "onnxruntime", "1.32.0")
    write_distribution(site, "numpy", "2.3.0", top="numpy")
    found = ort_backend.onnxruntime_distributions([str(site)])
    assert found == [("onnxruntime", "1.32.0")]
    assert ort_backend.shadowed_note(found, ["CPUExecutionProvider"]) is None
    write_distribution(site, "onnxruntime-gpu", "1.31.1", top=None)
    found = ort_backend.onnxruntime_distributions([str(site)])
    assert found == [("onnxruntime", "1.32.0"), ("onnxruntime-gpu", "1.31.1")]
    cpu_won = ort_backend.shadowed_note(found, ["CPUExecutionProvider"])
    assert "CPU build's files won" in cpu_won
    assert cpu_won.endswith("pip install --force-reinstall --no-deps onnxruntime-gpu==1.31.1")
    gpu_won = ort_backend.shadowed_note(found, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "GPU build's files are in place" in gpu_won


def test_the_installed_onnxruntime_is_found():
    versions = [v for _, v in ort_backend.onnxruntime_distributions()]
    assert onnxruntime.__version__ in versions


def test_bench_model_times_each_backend_and_writes_json(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))  # nothing lands there
    result = bench_model.bench_model(tiny_model, ["torch", "onnxruntime"], "cpu", sizes=[(30, 40)],
                               seconds=0.05, out=tmp_path)
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torch", "onnxruntime"}
    for row in rows.values():
        assert row["size"] == "40x30" and row["input"] == [1, 3, 32, 40] and row["fps"] > 0
        assert row["percent_of_peak"] == pytest.approx(
            100 * row["gflop_per_frame"] * row["fps"] / row["matmul_gflops"])
        assert row["peak_precision"] == "fp32"
    saved = json.loads((tmp_path / "model-cpu.json").read_text())
    assert set(saved["matmul_gflops_median"]) == {"fp32"}
    assert saved["rows"] == result["rows"] and saved["machine"]["cores"] == os.cpu_count()
    assert not (tmp_path / "cache").exists()


def test_bench_generators_take_the_shipped_shape_and_follow_changed_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_model, "engines_dir", lambda: tmp_path)
    [student] = bench_model._bench_model_files(None, ["realtime"], tmp_path)
    assert load_model(student)[1].kwargs == load_model(modelfile.REALTIME)[1].kwargs
    monkeypatch.setitem(models.REGISTRY, "unet", functools.partial(models.unet, ngf=4))
    [before] = bench_model._bench_model_files(None, ["unet"], tmp_path)
    monkeypatch.setitem(models.REGISTRY, "unet", functools.partial(models.unet, ngf=8))
    [after] = bench_model._bench_model_files(None, ["unet"], tmp_path)
    assert load_model(before)[1].kwargs == {"ngf": 4} and load_model(after)[1].kwargs == {"ngf": 8}


def test_bench_model_on_a_cpu_measures_onnxruntime_in_fp32_and_int8(
        tiny_student, tmp_path, int8_bound_for_random_weights):
    assert bench_model.default_variants("cpu") == ["torch", "onnxruntime-fp32", "onnxruntime-int8"]
    result = bench_model.bench_model(tiny_student, ["onnxruntime-fp32", "onnxruntime-int8"], "cpu",
                                     sizes=[(32, 40)], seconds=0.05, out=tmp_path)
    assert [r["name"] for r in result["rows"]] == ["onnxruntime-cpu", "onnxruntime-cpu-int8"]


def test_the_students_speedup_compares_the_best_backend_of_each_at_each_size():
    rows = [{"arch": "fast", "size": "640x360", "fps": 2.0, "name": "torch-cpu-fp32"},
            {"arch": "fast", "size": "640x360", "fps": 2.5, "name": "onnxruntime-cpu"},
            {"arch": "realtime", "size": "640x360", "fps": 30.0, "name": "onnxruntime-cpu"},
            {"arch": "realtime", "size": "640x360", "fps": 20.0, "name": "torch-cpu-fp32"},
            {"arch": "fast", "size": "1280x720", "fps": 0.5, "name": "onnxruntime-cpu"},  # no student row
            {"arch": "realtime", "size": "640x360", "backend": "tensorrt", "unavailable": "no"},
            {"arch": "realtime", "size": "640x360", "fps": 90.0, "name": "onnxruntime-cpu-int8"},
            {"arch": "resnet", "size": "640x360", "fps": 0.7, "name": "onnxruntime-cpu"}]
    assert bench_model._realtime_speedup(rows) == {"640x360": pytest.approx(12.0)}


@pytest.mark.parametrize(("name", "device", "tf32", "expected"), [
    ("torch-cuda-fp16", "cuda", True, "fp16"),
    ("torch-cuda-fp16-compiled-cudagraphs", "cuda", True, "fp16"),
    ("onnxruntime-cuda-fp16", "cuda", True, "fp16"),
    ("tensorrt-fp16", "cuda", False, "fp16"),
    ("torch-cuda-fp32", "cuda", True, "tf32"),
    ("torch-cuda-fp32", "cuda", False, "fp32"),
    ("onnxruntime-cpu", "cpu", True, "fp32"),
    ("torch-cpu-fp32", "cpu", True, "fp32"),
])
def test_each_backend_is_compared_with_the_matmul_peak_of_its_precision(name, device, tf32,
                                                                        expected):
    assert results.peak_precision(name, device, tf32) == expected


def test_bench_options_a_benchmark_does_not_take_are_user_errors():
    with pytest.raises(VidganError, match="does not take --sizes"):
        bench.run_bench("train", sizes=[(256, 256)])
    with pytest.raises(VidganError, match="unknown benchmark"):
        bench.run_bench("speed")
    with pytest.raises(VidganError, match="WIDTHxHEIGHT"):
        bench.parse_sizes("640x")
    assert bench.parse_sizes("640x360, 256X256") == [(360, 640), (256, 256)]


# --- GPU -------------------------------------------------------------------------------------

GPU_CASES = [
    ({"backend": "torch", "precision": "fp32"}, "torch-cuda-fp32", 45),
    ({"backend": "torch"}, "torch-cuda-fp16", 30),
    ({"backend": "torch", "cuda_graphs": True}, "torch-cuda-fp16-cudagraphs", 30),
    ({"backend": "torch", "compile": True}, "torch-cuda-fp16-compiled", 30),
    ({"backend": "auto"}, "torch-cuda-fp16", 30),
]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kwargs, name, min_psnr", GPU_CASES)
def test_gpu_torch_backends_match_the_reference(tiny_model, kwargs, name, min_psnr):
    backend = load_backend(tiny_model, device="cuda", **kwargs)
    assert backend.name == name
    check_against_reference(backend, tiny_model, min_psnr=min_psnr, max_diff=None)


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_outputs_survive_the_next_replay(tiny_model):
    backend = load_backend(tiny_model, "torch", "cuda", cuda_graphs=True)
    a, b = (torch.rand(1, 3, 32, 32, device="cuda", dtype=torch.float16) * 2 - 1 for _ in range(2))
    ya = backend(a)
    expected = ya.clone()
    backend(b)
    torch.testing.assert_close(ya, expected)


@pytest.mark.gpu
@needs_ort_cuda
@pytest.mark.parametrize("precision, min_psnr", [("fp32", 45), ("fp16", 30)])
def test_gpu_onnxruntime_matches_the_reference(tiny_model, precision, min_psnr):
    backend = load_backend(tiny_model, "onnxruntime", "cuda", precision)
    assert backend.name == "onnxruntime-cuda" + ("-fp16" if precision == "fp16" else "")
    check_against_reference(backend, tiny_model, min_psnr=min_psnr, max_diff=None)
