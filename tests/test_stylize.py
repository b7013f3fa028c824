"""`vidgan stylize`: images and folders of images, EXIF orientation, atomic outputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_square
from PIL import Image

from vidgan.errors import VidganError
from vidgan.stylize import stylize_images


@pytest.fixture(scope="module")
def backend(tiny_model):
    import torch

    from vidgan.backends import load_backend

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
    result = stylize_images(src, tmp_path / "out", backend=backend, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plain.png", "rotated.jpg"]
    assert len(result.written) == 2
    with Image.open(tmp_path / "out" / "rotated.jpg") as im:
        assert im.size == (48, 64)  # upright: EXIF orientation applied, so portrait
    with Image.open(tmp_path / "out" / "plain.png") as im:
        assert im.size == (40, 30) and im.mode == "RGB"
        assert np.abs(np.asarray(im).astype(int) - moving_square(3, 40, 30)).mean() > 10


def test_side_by_side_shows_the_upright_original_on_the_left(backend, tmp_path):
    src = _exif_rotated_jpeg(tmp_path / "in.jpg")
    stylize_images(src, tmp_path / "out.png", backend=backend, side_by_side=True, progress=False)
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert out.shape == (64, 96, 3)
    upright = np.rot90(moving_square(0, 64, 48), -1)  # orientation 6: turn clockwise
    assert np.abs(out[:, :48] - upright).mean() < 8


def test_processing_height_keeps_the_output_size(backend, tmp_path):
    Image.fromarray(moving_square(0, 128, 96)).save(tmp_path / "in.png")
    stylize_images(tmp_path / "in.png", tmp_path / "out.webp", backend=backend, height=32,
                   progress=False)
    with Image.open(tmp_path / "out.webp") as im:
        assert im.size == (128, 96) and im.format == "WEBP"


def test_file_into_an_existing_folder(backend, tmp_path):
    Image.fromarray(moving_square(0, 32, 32)).save(tmp_path / "in.bmp")
    (tmp_path / "out").mkdir()
    stylize_images(tmp_path / "in.bmp", tmp_path / "out", backend=backend, progress=False)
    assert (tmp_path / "out" / "in.bmp").is_file()


def test_unreadable_image_in_a_folder_is_skipped(backend, tmp_path, capsys):
    src = _folder(tmp_path)
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    result = stylize_images(src, tmp_path / "out", backend=backend, progress=False)
    assert [p.name for p in result.skipped] == ["broken.png"]
    assert not (tmp_path / "out" / "broken.png").exists()
    assert "skipped 1 image(s): broken.png (unreadable)" in capsys.readouterr().err


def test_existing_outputs_need_overwrite(backend, tmp_path):
    src = _folder(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "plain.png").write_text("old")
    with pytest.raises(VidganError, match="--overwrite"):
        stylize_images(src, tmp_path / "out", backend=backend, progress=False)
    assert (tmp_path / "out" / "plain.png").read_text() == "old"
    stylize_images(src, tmp_path / "out", backend=backend, overwrite=True, progress=False)
    assert Image.open(tmp_path / "out" / "plain.png").size == (40, 30)


def test_no_partial_file_is_left_when_saving_fails(tmp_path, monkeypatch):
    from vidgan import stylize

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
