"""ONNX and FP16 ONNX export, the engine profile, and `vidgan export`'s user errors (CPU only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from conftest import VANGOGH, moving_square
from PIL import Image

from vidgan.core import models
from vidgan.core.errors import VidganError
from vidgan.core.modelfile import file_hash, load_model, save_model
from vidgan.runtime.export.fp16 import convert_fp16
from vidgan.runtime.export.onnx import (
    GRAPH_REVISION,
    export_onnx,
    io_dtypes,
    onnx_metadata,
    op_precisions,
)
from vidgan.runtime.export.profile import PRESETS, Profile, make_profile, parse_shape
from vidgan.runtime.export.verify import (
    images_source,
    onnx_psnr,
    psnr,
    sample_images,
    torch_reference,
)
from vidgan.runtime.export_model import export_model


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, tmp_path_factory) -> Path:
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory) -> Path:
    """The real-time generator at its real width (ngf 32), random weights."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("fast") / "fast.safetensors"
    return save_model(path, models.build("fast"), "fast", {})


@pytest.fixture(scope="module")
def fast_onnx(fast_model, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fast-onnx")
    fp32 = export_onnx(fast_model, folder / "fast.onnx")
    return fp32, convert_fp16(fp32, folder / "fast.fp16.onnx")


def test_onnx_has_dynamic_batch_height_width(tiny_model, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
        assert dims[1].dim_value == 3
    meta = onnx_metadata(model)
    assert meta["vidgan.model_hash"] == file_hash(tiny_model)
    assert meta["vidgan.multiple"] == "4" and meta["vidgan.precision"] == "fp32"
    assert not list(tiny_onnx.parent.glob("*.partial"))


@pytest.mark.parametrize("shape", [(1, 100, 140), (2, 52, 36), (1, 256, 64)])
def test_onnx_matches_pytorch_at_any_multiple(tiny_model, tiny_onnx, shape):
    n, h, w = shape
    generator, _ = load_model(tiny_model)
    images = sample_images(n, (h, w))
    assert psnr(onnx_psnr_output(tiny_onnx, images), torch_reference(generator, images)) >= 45


def onnx_psnr_output(path: Path, images: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": images.numpy()})[0]
    assert out.shape == tuple(images.shape)
    return out


@pytest.mark.parametrize(("arch", "kwargs", "size"), [
    ("fast", {"ngf": 4, "n_blocks": 1}, (100, 140)),
    ("resnet", {"ngf": 4, "n_blocks": 1}, (52, 36)),
    ("unet", {"ngf": 4}, (256, 512)),
])
def test_every_generator_exports_a_clean_graph(tmp_path, arch, kwargs, size):
    torch.manual_seed(0)
    source = save_model(tmp_path / f"{arch}.safetensors", models.build(arch, **kwargs), arch, kwargs)
    fp32 = export_onnx(source, tmp_path / f"{arch}.onnx")
    fp16 = convert_fp16(fp32, tmp_path / f"{arch}.fp16.onnx")
    graph = onnx.load(str(fp32)).graph
    arithmetic = {"Constant", "ConstantOfShape", "Slice", "Transpose", "Reshape", "Identity", "Cast"}
    assert not {n.op_type for n in graph.node} & arithmetic  # folded into initializers
    initializers = {t.name for t in graph.initializer}
    assert all(n.input[1] in initializers for n in graph.node if n.op_type == "Pad")
    generator, _ = load_model(source)
    images = sample_images(1, size)
    reference = torch_reference(generator, images)
    assert onnx_psnr(fp32, reference, images) >= 45
    assert onnx_psnr(fp16, reference, images) >= 35


@pytest.mark.slow
@pytest.mark.skipif(not (VANGOGH / "valB").is_dir(), reason=f"photos {VANGOGH}/valB are absent")
def test_fast_onnx_matches_pytorch_on_real_photos(fast_model, fast_onnx):
    generator, _ = load_model(fast_model)
    images = sample_images(3, (256, 256), VANGOGH / "valB")
    assert images_source(VANGOGH / "valB").startswith("photos")
    reference = torch_reference(generator, images)
    fp32, fp16 = fast_onnx
    assert onnx_psnr(fp32, reference, images) >= 45
    assert onnx_psnr(fp16, reference, images) >= 35


def test_fp16_graph_keeps_instance_norm_in_fp32(tiny_onnx, tmp_path):
    half = onnx.load(str(convert_fp16(tiny_onnx, tmp_path / "tiny.fp16.onnx")))
    onnx.shape_inference.infer_shapes(half, check_type=True, strict_mode=True)
    kinds = op_precisions(half)
    assert kinds["float16"]["Conv"] == op_count(half, "Conv") > 0
    assert kinds["float32"]["InstanceNormalization"] == op_count(half, "InstanceNormalization") > 0
    assert "InstanceNormalization" not in kinds["float16"] and "Conv" not in kinds["float32"]
    weights = {i.name: i.data_type for i in half.graph.initializer}
    conv_weights = [n.input[1] for n in half.graph.node if n.op_type == "Conv"]
    assert {weights[w] for w in conv_weights} == {onnx.TensorProto.FLOAT16}
    assert io_dtypes(half) == {"input": "float32", "output": "float32"}
    assert onnx_metadata(half)["vidgan.precision"] == "fp16"


def op_count(model, op_type: str) -> int:
    return sum(n.op_type == op_type for n in model.graph.node)


def test_fp16_onnx_runs_close_to_fp32(tiny_model, tiny_onnx, tmp_path):
    fp16 = convert_fp16(tiny_onnx, tmp_path / "tiny.fp16.onnx")
    generator, _ = load_model(tiny_model)
    images = sample_images(2, (64, 96))
    reference = torch_reference(generator, images)
    value = onnx_psnr(fp16, reference, images)
    assert 35 <= value < onnx_psnr(tiny_onnx, reference, images)


def test_export_model_onnx_only_writes_checked_files(tiny_model, tmp_path):
    lines = []
    paths = export_model(tiny_model, tmp_path, onnx_only=True, fp16=True, log=lines.append)
    stem = f"tiny-{file_hash(tiny_model)}-g{GRAPH_REVISION}"
    assert [p.name for p in paths] == [f"{stem}.onnx", f"{stem}.fp16.onnx"]
    assert all(p.is_file() for p in paths)
    assert sum(line.startswith("wrote") for line in lines) == 2
    assert any("InstanceNormalization" in line for line in lines)
    with pytest.raises(VidganError, match="--overwrite"):
        export_model(tiny_model, tmp_path, onnx_only=True, log=lines.append)


def test_psnr_handles_nan_and_identity():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[1, 0, 0, 0] = float("nan")
    assert np.isnan(psnr(a, b))
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 0.02) == pytest.approx(10 * np.log10(4 / 0.02**2))


# --- profile --------------------------------------------------------------------------------

def test_default_profile_and_shapes():
    p = make_profile(4)
    assert (p.min, p.opt, p.max) == PRESETS["default"]
    assert p.shapes() == ((1, 3, 256, 256), (1, 3, 720, 1280), (1, 3, 1920, 1920))
    p = make_profile(4, "720p", max_shape="1080x1920", batch=4)
    assert p.shapes()[1:] == ((4, 3, 720, 1280), (4, 3, 1080, 1920))
    assert p.as_dict()["max"] == [4, 3, 1080, 1920]


def test_presets_round_up_to_the_model_multiple():
    p = make_profile(256)
    assert (p.min, p.opt, p.max) == ((256, 256), (768, 1280), (2048, 2048))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_shape": "1081x1920"}, "multiples of 4.*try 1084x1920"),
        ({"min_shape": "800x800"}, "min <= opt <= max"),
        ({"opt_shape": "720x1280", "max_shape": "720x640"}, "min <= opt <= max"),
        ({"batch": 0}, "--batch must be at least 1"),
        ({"min_shape": "0x256"}, "positive multiples"),
        ({"preset": "4k"}, "unknown --profile '4k'"),
        ({"opt_shape": "big"}, "--opt takes HEIGHTxWIDTH"),
    ],
)
def test_bad_profiles_are_user_errors(kwargs, message):
    with pytest.raises(VidganError, match=message):
        make_profile(4, **kwargs)


def test_parse_shape():
    assert parse_shape("720x1280", "--opt") == (720, 1280)
    assert parse_shape(" 64X48 ", "--opt") == (64, 48)
    with pytest.raises(VidganError):
        parse_shape("720*1280", "--opt")
    assert Profile((4, 4), (8, 8), (8, 8)).batch == 1


# --- the command line -----------------------------------------------------------------------

def test_cli_onnx_export_then_refuses_to_overwrite(tiny_model, tmp_path, vidgan_cli):
    args = ("export", "--model", tiny_model, "--out", tmp_path, "--onnx")
    code, out, err = vidgan_cli(*args)
    assert code == 0, err
    assert "wrote" in out and len(list(tmp_path.glob("*.onnx"))) == 1
    code, _, err = vidgan_cli(*args)
    assert code == 2
    assert err.count("\n") == 1 and "pass --overwrite" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max", "1081x1920"], "multiples of 4"),
        (["--min", "2000x2000"], "min <= opt <= max"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--opt-level", "9"], "--opt-level must be 0..5"),
        (["--workspace", "0"], "--workspace must be a positive"),
        (["--profile", "4k"], "unknown --profile"),
        (["--opt", "hd"], "--opt takes HEIGHTxWIDTH"),
    ],
)
def test_cli_user_errors_are_one_line(tiny_model, tmp_path, vidgan_cli, args, message):
    code, _, err = vidgan_cli("export", "--model", tiny_model, "--out", tmp_path, "--onnx", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert not list(tmp_path.iterdir())


def _read_only_folder(tmp_path):
    import os

    if os.geteuid() == 0:  # root writes through permission bits: /sys refuses even root
        return Path("/sys")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize("case", ["out is a file", "read-only out", "photos not a folder",
                                  "photos without images", "workspace nan"])
def test_cli_bad_folders_are_one_line(tiny_model, tmp_path, vidgan_cli, case):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    args, message = {
        "out is a file": (["--out", tmp_path / "file"], "is a file"),
        "read-only out": (["--out", _read_only_folder(tmp_path) / "engines"], "output folder"),
        "photos not a folder": (["--out", tmp_path, "--photos", tmp_path / "file"], "not a folder"),
        "photos without images": (["--out", tmp_path, "--photos", tmp_path / "empty"], "holds no .bmp"),
        "workspace nan": (["--out", tmp_path, "--workspace", "nan"], "--workspace must be"),
    }[case]
    code, _, err = vidgan_cli("export", "--model", tiny_model, "--onnx", *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.onnx"))


def test_verification_photos_are_built_in_or_given(tmp_path):
    from vidgan.core.images import sample_photos

    images = sample_images(4, (64, 96))
    assert images.shape == (4, 3, 64, 96) and images_source() == "the built-in sample photos"
    first = torch.from_numpy(cv2.resize(sample_photos()[0], (96, 64), interpolation=cv2.INTER_AREA))
    torch.testing.assert_close(images[0], first.permute(2, 0, 1).float() / 127.5 - 1)
    torch.testing.assert_close(images[3], images[0].flip(-1), atol=0.05, rtol=0)  # mirrored
    Image.fromarray(moving_square(0, 96, 64)).save(tmp_path / "mine.png")
    mine = sample_images(1, (64, 96), tmp_path)
    torch.testing.assert_close(mine[0], torch.from_numpy(moving_square(0, 96, 64)).permute(
        2, 0, 1).float() / 127.5 - 1)
    assert images_source(tmp_path) == f"photos in {tmp_path}"


def test_cli_missing_model_is_a_user_error(tmp_path, vidgan_cli):
    code, _, err = vidgan_cli("export", "--model", tmp_path / "none.safetensors", "--onnx")
    assert code == 2 and "does not exist" in err


def test_cli_engine_without_tensorrt_or_gpu_says_what_is_missing(tiny_model, tmp_path):
    from vidgan.runtime.export.engines import missing_requirements

    missing = missing_requirements()
    if missing is None:
        pytest.skip("TensorRT and a GPU are both present")
    # A real process: the message must not depend on anything imported earlier by the tests.
    result = subprocess.run([sys.executable, "-m", "vidgan", "export", "--model", str(tiny_model),
                             "--out", str(tmp_path), "--fp16"], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.strip() == f"error: {missing}"
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        assert "pip install 'vidgan[trt]'" in result.stderr
    if not torch.cuda.is_available():
        assert "CUDA GPU" in result.stderr
    assert not list(tmp_path.iterdir())
