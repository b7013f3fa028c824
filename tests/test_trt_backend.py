"""TensorRT backend: sidecar matching, engine discovery and layer-precision parsing on any machine;
engine build, verification and inference where TensorRT and a CUDA GPU exist (marked `tensorrt`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidgan.backends.trt_backend import (
    FORMAT,
    TensorRTBackend,
    engines_dir,
    find_engine,
    missing_requirements,
    sidecar_mismatch,
)
from vidgan.errors import VidganError
from vidgan.export import export_model, layer_precisions, psnr, sample_images, torch_reference
from vidgan.modelfile import file_hash, load_model

MISSING = missing_requirements()
needs_trt = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

ENV = {"tensorrt": "10.13.0.35", "gpu": "NVIDIA H200", "compute_capability": "9.0"}


def sidecar(**changes) -> dict:
    return {"format": FORMAT, **ENV, "precision": "fp16", "multiple": 4, **changes}


def test_sidecar_matching_this_tensorrt_and_gpu():
    assert sidecar_mismatch(sidecar(), ENV) is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"tensorrt": "10.12.0.36"}, ["TensorRT 10.12.0.36", "this is TensorRT 10.13.0.35"]),
        ({"gpu": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}, ["A100", "H200", "8.0"]),
        ({"gpu": "NVIDIA H100 80GB HBM3"}, ["H100", "this GPU is NVIDIA H200"]),
        ({"format": "something/1"}, [FORMAT]),
    ],
)
def test_sidecar_mismatch_says_why(changes, words):
    reason = sidecar_mismatch(sidecar(**changes), ENV)
    assert reason is not None and all(w in reason for w in words)


def test_layer_precisions_reads_tensorrt_10_and_11_reports():
    v10 = {"Layers": [
        {"Name": "conv1", "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "norm1", "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
        {"Name": "conv2", "Outputs": [{"Name": "c", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
    ], "Bindings": ["input", "output"]}
    v11 = {"Layers": [
        {"Name": "conv1", "Outputs": [{"Name": "a", "Format": "Channel major (kHWC8)", "DataType": "Half"}]},
        {"Name": "norm1", "Outputs": [{"Name": "b", "Format": "Row major linear (kLINEAR)", "DataType": "Float"}]},
        "layer reported by name only",
    ]}
    assert layer_precisions(json.dumps(v10)) == {"fp16": 2, "fp32": 1}
    assert layer_precisions(json.dumps(v11)) == {"fp16": 1, "fp32": 1, "unknown": 1}


def test_engines_dir_is_in_the_users_cache_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDGAN_ENGINES", raising=False)
    monkeypatch.delenv("VIDGAN_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert engines_dir() == Path.home() / ".cache" / "vidgan" / "engines"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engines_dir() == tmp_path / "xdg" / "vidgan" / "engines"
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    assert engines_dir() == tmp_path / "cache" / "engines"
    monkeypatch.setenv("VIDGAN_ENGINES", str(tmp_path))
    assert engines_dir() == tmp_path


def test_find_engine_ignores_other_models_and_empty_folders(tiny_model, tmp_path):
    assert find_engine(tiny_model, tmp_path) is None
    (tmp_path / "other.engine").write_bytes(b"x")
    (tmp_path / "other.json").write_text(json.dumps(sidecar(model_hash="0" * 16)))
    assert find_engine(tiny_model, tmp_path) is None


@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are present")
def test_without_tensorrt_or_gpu_no_engine_is_offered(tiny_model, tmp_path):
    (tmp_path / "tiny.engine").write_bytes(b"x")
    (tmp_path / "tiny.json").write_text(json.dumps(sidecar(model_hash=file_hash(tiny_model))))
    assert find_engine(tiny_model, tmp_path) is None
    with pytest.raises(VidganError, match="TensorRT engines need"):
        TensorRTBackend.for_model(tiny_model, directory=tmp_path)


# --- with TensorRT and a GPU ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_engine(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("engines")
    paths = export_model(tiny_model, out, fp16=True, min_shape="64x64", opt_shape="128x192",
                         max_shape="256x256", batch=2, opt_level=1)
    return paths[-1]


@pytest.mark.tensorrt
@needs_trt
def test_engine_sidecar_describes_the_build(tiny_model, tiny_engine):
    info = json.loads(tiny_engine.with_suffix(".json").read_text())
    assert info["model_hash"] == file_hash(tiny_model) and info["precision"] == "fp16"
    assert info["profile"] == {"min": [1, 3, 64, 64], "opt": [2, 3, 128, 192], "max": [2, 3, 256, 256]}
    assert info["input_dtype"] == info["output_dtype"] == "float32"
    assert info["layers"].get("fp16", 0) > 0
    assert info["verification"]["psnr_db"] >= 35
    assert find_engine(tiny_model, tiny_engine.parent) == tiny_engine


@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 128, 192), (1, 256, 100)])
def test_engine_matches_pytorch_across_the_profile(tiny_model, tiny_engine, shape):
    backend = TensorRTBackend.from_file(tiny_engine)
    assert backend.name == "tensorrt-fp16"
    n, h, w = shape
    images = sample_images(n, (h, w))
    generator, _ = load_model(tiny_model)
    reference = torch_reference(generator, images, "cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # a caller on its own stream gets its own context
        out = backend(images.cuda())
    torch.cuda.current_stream().wait_stream(side)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert psnr(out, reference) >= 35


@pytest.mark.tensorrt
@needs_trt
def test_engine_refuses_shapes_outside_its_profile(tiny_engine):
    backend = TensorRTBackend.from_file(tiny_engine)
    with pytest.raises(VidganError, match="outside the engine's profile"):
        backend(torch.zeros(1, 3, 512, 512, device="cuda"))
    with pytest.raises(VidganError, match="outside the engine's profile"):
        backend(torch.zeros(3, 3, 64, 64, device="cuda"))


@pytest.mark.tensorrt
@needs_trt
def test_engine_from_another_tensorrt_is_refused(tiny_engine, tmp_path):
    copy = tmp_path / tiny_engine.name
    copy.write_bytes(tiny_engine.read_bytes())
    info = json.loads(tiny_engine.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**info, "tensorrt": "9.0.0"}))
    with pytest.raises(VidganError, match="rebuild it with `vidgan export --fp16`"):
        TensorRTBackend.from_file(copy)


# --- benchmarks/gpu_check.py's verdicts -------------------------------------------------------

def load_gpu_check():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resnet_rows(**fps) -> list[dict]:
    names = {"fp32": "torch fp32", "fp16": "torch fp16", "trt": "TensorRT fp16"}
    return [{"model": "resnet", "size": "720x1280", "backend": names[k], "fps": v,
             "gflop_per_frame": 1390.0} for k, v in fps.items()]


def test_gpu_check_marks_targets_met_and_not_met():
    gpu_check = load_gpu_check()
    met = gpu_check.targets(resnet_rows(fp32=50, fp16=120, trt=300), 989, (720, 1280))
    assert [t["status"] for t in met] == ["met", "met", "met"]
    assert met[2]["value"] == pytest.approx(100 * 300 * 1390 / 1e3 / 989, abs=0.01)
    missed = gpu_check.targets(resnet_rows(fp32=50, fp16=120, trt=150), 989, (720, 1280))
    assert [t["status"] for t in missed] == ["not met", "not met", "not met"]
    absent = gpu_check.targets(resnet_rows(fp32=50, fp16=120), 989, (720, 1280))
    assert all(t["status"].startswith("not measured") for t in absent)
