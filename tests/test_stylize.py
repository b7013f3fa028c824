"""`vidgan stylize`: images and folders of images, EXIF orientation, atomic outputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_square
from PIL import Image

from vidgan.core.errors import VidganError
from vidgan.pipelines.stylize import load_image, stylize_images, upright_size
from vidgan.runtime.stylizer import Stylizer


@pytest.fixture(scope="module")
def backend(tiny_model):
    import torch

    from vidgan.runtime.backends import load_backend

    threads = torch.get_num_threads()
    be = load_backend(tiny_model, "torch", "cpu")
    torch.set_num_threads(1)  # a busy 2-core machine: spinning threads slow tiny models down
    yield be
    torch.set_num_threads(threads)


def _exif_rotated_jpeg(path, width=64, height=48):
    """A JPEG stored `width` x `height` whose EXIF says: rotate 90 degrees clockwise to view."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the 0th row is the visual right side
    Image.fromarray(moving_square(0, width, height)).save(path, exif=exif.tobytes(), quality=95)
    return path


def _folder(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    _exif_rotated_jpeg(src / "rotated.jpg")
    Image.fromarray(moving_square(3, 40, 30)).save(src / "plain.png")
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_in_folder_out_with_names_and_orientation(backend, tmp_path):
    src = _folder(tmp_path)
    result = stylize_images(src, tmp_path / "out", Stylizer(backend), progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plain.png", "rotated.jpg"]
    assert len(result.written) == 2
    with Image.open(tmp_path / "out" / "rotated.jpg") as im:
        assert im.size == (48, 64)  # upright: EXIF orientation applied, so portrait
    with Image.open(tmp_path / "out" / "plain.png") as im:
        assert im.size == (40, 30) and im.mode == "RGB"
        assert np.abs(np.asarray(im).astype(int) - moving_square(3, 40, 30)).mean() > 10


def test_upright_size_is_the_loaded_image_size_from_the_header_alone(tmp_path):
    # what `auto` checks a TensorRT engine's profile against before the model loads
    src = _folder(tmp_path)
    for name in ("rotated.jpg", "plain.png"):
        assert upright_size(src / name) == load_image(src / name).rgb.shape[:2]
    assert upright_size(src / "rotated.jpg") == (64, 48)
    assert upright_size(src / "notes.txt") is None


def test_side_by_side_shows_the_upright_original_on_the_left(backend, tmp_path):
    src = _exif_rotated_jpeg(tmp_path / "in.jpg")
    stylize_images(src, tmp_path / "out.png", Stylizer(backend), side_by_side=True, progress=False)
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert out.shape == (64, 96, 3)
    upright = np.rot90(moving_square(0, 64, 48), -1)  # orientation 6: turn clockwise
    assert np.abs(out[:, :48] - upright).mean() < 8


def test_processing_height_keeps_the_output_size(backend, tmp_path):
    Image.fromarray(moving_square(0, 128, 96)).save(tmp_path / "in.png")
    stylize_images(tmp_path / "in.png", tmp_path / "out.webp", Stylizer(backend, 32),
                   progress=False)
    with Image.open(tmp_path / "out.webp") as im:
        assert im.size == (128, 96) and im.format == "WEBP"


def test_file_into_an_existing_folder(backend, tmp_path):
    Image.fromarray(moving_square(0, 32, 32)).save(tmp_path / "in.bmp")
    (tmp_path / "out").mkdir()
    stylize_images(tmp_path / "in.bmp", tmp_path / "out", Stylizer(backend), progress=False)
    assert (tmp_path / "out" / "in.bmp").is_file()


def test_unreadable_image_in_a_folder_is_skipped(backend, tmp_path, capsys):
    src = _folder(tmp_path)
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    result = stylize_images(src, tmp_path / "out", Stylizer(backend), progress=False)
    assert [p.name for p in result.skipped] == ["broken.png"]
    assert not (tmp_path / "out" / "broken.png").exists()
    assert "skipped 1 image(s): broken.png (unreadable)" in capsys.readouterr().err


def test_existing_outputs_need_overwrite(backend, tmp_path):
    src = _folder(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "plain.png").write_text("old")
    with pytest.raises(VidganError, match="--overwrite"):
        stylize_images(src, tmp_path / "out", Stylizer(backend), progress=False)
    assert (tmp_path / "out" / "plain.png").read_text() == "old"
    stylize_images(src, tmp_path / "out", Stylizer(backend), overwrite=True, progress=False)
    assert Image.open(tmp_path / "out" / "plain.png").size == (40, 30)


def test_no_partial_file_is_left_when_saving_fails(tmp_path, monkeypatch):
    from vidgan.pipelines import stylize

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError):
        stylize.save_image(moving_square(0, 8, 8), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "not an image", "empty folder", "same folder",
                                  "bad extension"])
def test_user_errors_are_one_line(tiny_model, tmp_path, vidgan_cli, case):
    src, dst, message = {
        "missing": (tmp_path / "nope.jpg", tmp_path / "out.jpg", "does not exist"),
        "not an image": (tmp_path / "notes.jpg", tmp_path / "out.jpg", "not an image"),
        "empty folder": (tmp_path / "empty", tmp_path / "out", "holds no images"),
        "same folder": (tmp_path / "photos", tmp_path / "photos", "input folder"),
        "bad extension": (tmp_path / "in.png", tmp_path / "out.xyz", "image format"),
    }[case]
    (tmp_path / "notes.jpg").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "photos").mkdir()
    Image.fromarray(moving_square(0, 16, 16)).save(tmp_path / "photos" / "a.png")
    Image.fromarray(moving_square(0, 16, 16)).save(tmp_path / "in.png")
    before = set(tmp_path.rglob("*"))
    code, _, err = vidgan_cli("stylize", src, dst, "--model", tiny_model)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert set(tmp_path.rglob("*")) == before


# --- unusual images: tiny, huge, 16-bit, float, transparent, animated -------------------------

def _gradient(h=48, w=64) -> np.ndarray:
    return np.tile(np.linspace(0, 1, w), (h, 1))


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    from vidgan.pipelines.stylize import load_image

    ramp = _gradient()
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(ramp.astype(np.float32), mode="F").save(tmp_path / "unit.tif")
    Image.fromarray((ramp * 30 - 10).astype(np.float32), mode="F").save(tmp_path / "hdr.tif")
    for name in ("g16.png", "unit.tif", "hdr.tif"):
        rgb = load_image(tmp_path / name).rgb
        assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3), name
        assert rgb[:, 0].max() <= 1 and rgb[:, -1].min() >= 254, name  # the full range, not white
        np.testing.assert_allclose(rgb[0, :, 0], ramp[0] * 255, atol=1.5)


def test_16_bit_image_comes_out_stylized_not_flat(backend, tmp_path):
    ramp = (_gradient() * 65535).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "in.png")
    stylize_images(tmp_path / "in.png", tmp_path / "out.png", Stylizer(backend), progress=False)
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert out.std() > 10  # a flat white (or black) image has none


def test_transparency_is_kept_in_png_and_named_when_dropped(backend, tmp_path, capsys):
    alpha = np.tile(np.linspace(0, 255, 64), (48, 1)).astype(np.uint8)
    rgba = np.dstack([moving_square(0, 64, 48), alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    stylize_images(tmp_path / "in.png", tmp_path / "out.png", Stylizer(backend), side_by_side=True,
                   progress=False)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA" and im.size == (128, 48)
        alpha = np.asarray(im)[..., 3]
    np.testing.assert_array_equal(alpha, np.concatenate([rgba[..., 3]] * 2, axis=1))
    assert capsys.readouterr().err == ""
    stylize_images(tmp_path / "in.png", tmp_path / "out.jpg", Stylizer(backend), progress=False)
    assert "transparency of 1 image(s) was dropped" in capsys.readouterr().err
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def _animated_gif(path, frames=3):
    images = [Image.fromarray(moving_square(i, 40, 32)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100)
    return path


def test_unusable_images_in_a_folder_are_skipped_and_counted(backend, tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(moving_square(0, 40, 30)).save(src / "good.png")
    Image.fromarray(moving_square(0, 40, 30)).save(src / "still.gif")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(src / "tiny.png")
    Image.fromarray(np.zeros((3000, 4, 3), np.uint8)).save(src / "sliver.png")
    _animated_gif(src / "anim.gif")
    result = stylize_images(src, tmp_path / "out", Stylizer(backend), progress=False)
    assert sorted(p.name for p in result.written) == ["good.png", "still.gif"]
    assert sorted(p.name for p in result.skipped) == ["anim.gif", "sliver.png", "tiny.png"]
    err = capsys.readouterr().err
    assert "skipped 3 image(s)" in err and "3x2 px is too small" in err
    assert "an animation of 3 frames" in err and "vidgan render" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png", "still.gif"]


@pytest.mark.parametrize("case", ["tiny", "animated"])
def test_an_unusable_single_image_is_one_error(tiny_model, tmp_path, vidgan_cli, case):
    if case == "tiny":
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "in.png")
        src, message = tmp_path / "in.png", "1x1 px is too small"
    else:
        src, message = _animated_gif(tmp_path / "in.gif"), "an animation of 3 frames"
    code, _, err = vidgan_cli("stylize", src, tmp_path / "out.png", "--model", tiny_model)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.png").exists()


def test_memory_is_estimated_before_allocating(tiny_model, tmp_path, vidgan_cli, monkeypatch):
    from vidgan.runtime import frames

    Image.fromarray(moving_square(0, 64, 48)).save(tmp_path / "in.png")
    # --height 100000 asks for a 133333x100000 frame: terabytes, on any machine
    code, _, err = vidgan_cli("stylize", tmp_path / "in.png", tmp_path / "out.png",
                              "--model", tiny_model, "--height", 100000)
    assert code == 2 and "GB of CPU memory" in err and "use --height" in err, err
    # a big photo on a machine with little memory left: the --height that fits is named
    Image.fromarray(np.zeros((2000, 3000, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(frames, "available_memory", lambda device: 200e6)
    code, _, err = vidgan_cli("stylize", tmp_path / "big.png", tmp_path / "out.png",
                              "--model", tiny_model)
    assert code == 2 and "0.2 GB are free" in err, err
    suggested = int(err.split("use --height ")[1].split()[0])
    assert 16 <= suggested < 2000
    code, _, err = vidgan_cli("stylize", tmp_path / "big.png", tmp_path / "out.png",
                              "--model", tiny_model, "--height", suggested, "--backend", "torch")
    assert code == 0, err
    assert not list(tmp_path.glob("*.partial*"))


def test_a_folder_builds_the_memory_estimate_once(tiny_model, tmp_path, monkeypatch):
    # every image is checked against free memory; building the generator for each was slow
    # and left a wide window for a signal to land inside torch's device context
    from vidgan.core import models

    stylizer = Stylizer.build(tiny_model, "torch", "cpu")
    real, builds = models.build, []
    monkeypatch.setattr(models, "build", lambda *a, **k: builds.append(a) or real(*a, **k))
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        Image.fromarray(moving_square(i, 32, 24)).save(src / f"{i}.png")
    assert len(stylize_images(src, tmp_path / "out", stylizer, progress=False).written) == 3
    assert len(builds) == 1


def test_full_disk_is_one_error_and_leaves_no_file(tiny_model, tmp_path):
    from conftest import cli_code, run_with_file_limit

    from vidgan.runtime.backends import load_backend

    load_backend(tiny_model, "onnxruntime", "cpu")  # its ONNX export cached before the limit
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "in.png")
    proc = run_with_file_limit(cli_code("stylize", tmp_path / "in.png", tmp_path / "out.jpg",
                                        "--model", tiny_model, "--backend", "onnxruntime"), 20_000)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]  # after any progress lines
    assert last.startswith(f"error: cannot write {tmp_path / 'out.jpg'}: File too large")
    assert [line.startswith("error:") for line in proc.stderr.splitlines()].count(True) == 1
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]  # no out.jpg, no partial


def test_sigterm_says_how_many_images_were_written(tiny_model, tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import signal_when, slow_cli_code

    src, out = tmp_path / "photos", tmp_path / "out"
    src.mkdir()
    for i in range(40):
        Image.fromarray(moving_square(i, 32, 24)).save(src / f"{i:02d}.png")
    code = slow_cli_code("stylize", src, out, "--model", tiny_model, "--backend", "torch")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    status, err = signal_when(proc, lambda: out.is_dir() and len(list(out.iterdir())) >= 3,
                              signal.SIGTERM)
    written = sorted(p.name for p in out.iterdir())
    assert status == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1] == f"interrupted: {len(written)} of 40 images written to {out}"
    assert 3 <= len(written) < 40 and all(".partial" not in name for name in written)
    assert "Traceback" not in err
