"""TensorRT backend: sidecar matching, engine discovery and layer-precision parsing on any machine;
engine build, verification and inference where TensorRT and a CUDA GPU exist (marked `tensorrt`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidgan.core.cache import engines_dir
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import file_hash, load_model
from vidgan.runtime.backends import trt_backend
from vidgan.runtime.backends.trt_backend import TensorRTBackend, aligned
from vidgan.runtime.export.engines import (
    FORMAT,
    choose_engine,
    missing_requirements,
    profile_gap,
    sidecar_mismatch,
)
from vidgan.runtime.export.tensorrt import layer_precisions
from vidgan.runtime.export.verify import psnr, sample_images, torch_reference
from vidgan.runtime.export_model import export_model

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


def test_choose_engine_ignores_other_models_and_empty_folders(tiny_model, tmp_path):
    assert choose_engine(tiny_model, directory=tmp_path) == (None, None)
    (tmp_path / "other.engine").write_bytes(b"x")
    (tmp_path / "other.json").write_text(json.dumps(sidecar(model_hash="0" * 16)))
    assert choose_engine(tiny_model, directory=tmp_path) == (None, None)


DEFAULT_PROFILE = {"min": [1, 3, 256, 256], "opt": [1, 3, 720, 1280], "max": [1, 3, 1920, 1920]}


@pytest.mark.parametrize(
    ("shape", "multiple", "words"),
    [
        ((1, 720, 1280), 4, None),
        ((1, 1920, 1080), 4, None),  # portrait 1080p
        ((1, 180, 320), 4, ["not 180x320", "--min 180x256"]),  # live --height 180
        ((1, 2160, 3840), 4, ["not 2160x3840", "--max 2160x3840"]),  # 4K input
        ((1, 1440, 2560), 4, ["not 1440x2560", "--max 1920x2560"]),  # a 2560-wide screen
        ((2, 720, 1280), 4, ["batches of 1..1 frames, not 2", "--batch 2"]),  # --batch-size 2
        ((1, 250, 330), 16, None),  # padded to 256x336 first, as vidgan.runtime.frames does
        ((1, 230, 330), 16, ["not 240x336"]),
    ],
)
def test_profile_gap_says_which_shapes_an_engine_cannot_take(shape, multiple, words):
    gap = profile_gap(sidecar(multiple=multiple, profile=DEFAULT_PROFILE), [shape])
    if words is None:
        assert gap is None
    else:
        assert gap is not None and all(w in gap for w in words), gap
        assert "rebuild it with `vidgan export --fp16" in gap


def test_profile_gap_checks_every_shape_and_needs_a_profile():
    shapes = [(1, 720, 1280), (1, 4000, 3000)]
    assert "not 4000x3000" in profile_gap(sidecar(profile=DEFAULT_PROFILE), shapes)
    assert profile_gap(sidecar(profile=DEFAULT_PROFILE), []) is None
    assert "no profile" in profile_gap(sidecar(), [(1, 720, 1280)])


def test_misaligned_views_are_copied_for_tensorrt():
    base = torch.arange(4096, dtype=torch.int32).to(torch.uint8)
    start = -base.data_ptr() % 256  # the first element on a 256-byte boundary
    view = base[start:start + 1024]
    assert aligned(view) is view
    shifted = base[start + 12:start + 1036]  # like batch[1:] of a batch whose images are 12 B
    copy = aligned(shifted)
    assert copy.data_ptr() != shifted.data_ptr() and torch.equal(copy, shifted)


def test_trt_extra_matches_the_cuda_of_torchs_build():
    from vidgan.runtime.export.engines import TRT_EXTRA_CUDA
    from vidgan.train.recipes import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    (requirement,) = project["project"]["optional-dependencies"]["trt"]
    assert requirement.startswith(f"tensorrt-cu{TRT_EXTRA_CUDA}>=")
    if torch.version.cuda:  # the pinned torch of this checkout
        assert torch.version.cuda.partition(".")[0] == TRT_EXTRA_CUDA


@pytest.mark.parametrize(("cuda", "words"), [
    ("13.0", ["pip install 'vidgan[trt]'", "CUDA 13", "NVIDIA's package index", "only PyPI"]),
    ("12.8", ["pip install tensorrt-cu12", "CUDA 12"]),
    (None, ["a CUDA build of torch"]),
])
def test_tensorrt_install_names_the_package_for_torchs_cuda(monkeypatch, cuda, words):
    from vidgan.runtime.export.engines import tensorrt_install

    monkeypatch.setattr(torch.version, "cuda", cuda)
    text = tensorrt_install()
    assert all(w in text for w in words), text


@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are present")
def test_without_tensorrt_or_gpu_no_engine_is_offered(tiny_model, tmp_path):
    (tmp_path / "tiny.engine").write_bytes(b"x")
    (tmp_path / "tiny.json").write_text(json.dumps(sidecar(model_hash=file_hash(tiny_model))))
    assert choose_engine(tiny_model, directory=tmp_path) == (None, MISSING)
    with pytest.raises(VidganError, match="TensorRT engines need"):
        trt_backend.load(tiny_model, directory=tmp_path)


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
    assert choose_engine(tiny_model, directory=tiny_engine.parent) == (tiny_engine, None)


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
    with torch.cuda.stream(side):  # a caller on a stream of its own
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
def test_auto_skips_an_engine_whose_profile_does_not_fit(tiny_model, tiny_engine, monkeypatch,
                                                         capsys):
    from vidgan.runtime.backends import load_backend

    monkeypatch.setenv("VIDGAN_ENGINES", str(tiny_engine.parent))
    assert load_backend(tiny_model, "auto", "cuda", shapes=[(2, 128, 192)]).name == "tensorrt-fp16"
    fallback = load_backend(tiny_model, "auto", "cuda", shapes=[(1, 512, 512)])
    assert fallback.name.startswith("torch-cuda")
    err = capsys.readouterr().err
    assert err.startswith("warning: not using TensorRT:") and "--max 512x512" in err
    with pytest.raises(VidganError, match="--batch 3"):
        load_backend(tiny_model, "tensorrt", "cuda", shapes=[(3, 128, 128)])


@pytest.mark.tensorrt
@needs_trt
def test_engine_runs_views_and_shares_one_context_across_streams(tiny_engine):
    backend = TensorRTBackend.from_file(tiny_engine)
    batch = torch.rand(2, 3, 68, 68, device="cuda") * 2 - 1
    assert batch[1:].data_ptr() % 256  # 55488 bytes in: not on a 256-byte boundary
    whole = backend(batch)
    streams = [torch.cuda.Stream() for _ in range(2)]
    outs = []
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            outs.append(backend(batch[1:]))
        torch.cuda.current_stream().wait_stream(stream)
    for out in outs:
        torch.testing.assert_close(out, whole[1:])


@pytest.mark.tensorrt
@needs_trt
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_engine_runs_on_its_own_gpu_whatever_is_current(tiny_engine):
    backend = TensorRTBackend.from_file(tiny_engine, torch.device("cuda", 0))
    x = torch.rand(1, 3, 64, 64, device="cuda:0") * 2 - 1
    expected = backend(x)
    with torch.cuda.device(1):  # --device cuda:0 while another GPU is current
        out = backend(x)
    assert out.device == torch.device("cuda", 0)
    torch.testing.assert_close(out, expected)


@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("blob", [b"not a timing cache" * 50, bytes(4096)])
def test_a_corrupt_timing_cache_is_replaced_by_a_fresh_one(tmp_path, blob):
    import tensorrt as trt

    from vidgan.runtime.export.tensorrt import use_timing_cache

    config = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_builder_config()
    path = tmp_path / "timing.cache"
    path.write_bytes(blob)
    said = []
    use_timing_cache(config, path, said.append)
    assert len(said) == 1 and said[0].startswith("warning: the timing cache")
    assert config.get_timing_cache() is not None


@pytest.mark.tensorrt
@needs_trt
def test_engine_from_another_tensorrt_is_refused(tiny_engine, tmp_path):
    copy = tmp_path / tiny_engine.name
    copy.write_bytes(tiny_engine.read_bytes())
    info = json.loads(tiny_engine.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**info, "tensorrt": "9.0.0"}))
    with pytest.raises(VidganError, match="rebuild it with `vidgan export --fp16`"):
        TensorRTBackend.from_file(copy)
