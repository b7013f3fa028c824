"""frames.py: normalization, padding, resizing and the Stylizer around a backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidgan.core import padding
from vidgan.runtime import frames
from vidgan.runtime.stylizer import Stylizer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


def random_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


class Identity:
    """A backend that returns its input and keeps the last batch it was given."""

    def __init__(self, device="cpu", multiple: int = 4, input_dtype=torch.float32):
        self.name, self.device = "identity", torch.device(device)
        self.multiple, self.input_dtype = multiple, input_dtype
        self.seen = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x


def test_normalize_maps_uint8_to_nchw_minus_one_to_one():
    img = random_frames(2, 5, 7)
    x = frames.normalize(torch.from_numpy(img))
    expected = torch.from_numpy(img.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    assert x.shape == (2, 3, 5, 7) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_normalize_channels_last_matches_contiguous(dtype):
    t = torch.from_numpy(random_frames(1, 6, 9))
    cl = frames.normalize(t, dtype, torch.channels_last)
    assert cl.dtype == dtype and cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl.float(), frames.normalize(t), atol=1e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_denormalize_inverts_normalize_exactly(dtype):
    img = random_frames(3, 11, 13)
    x = frames.normalize(torch.from_numpy(img), dtype)
    out = frames.denormalize(x)
    assert out.dtype == torch.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out.numpy(), img)


def test_denormalize_rounds_and_saturates():
    values = torch.tensor([-1.5, -1.0, 100.4 / 127.5 - 1, 100.6 / 127.5 - 1, 1.0, 1.5])
    x = values.view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    out = frames.denormalize(x)[0, 0, :, 0].tolist()
    assert out == [0, 0, 100, 101, 255, 255]


def test_denormalize_takes_a_cropped_view():
    img = random_frames(1, 8, 12)
    padded = F.pad(frames.normalize(torch.from_numpy(img)), (0, 4, 0, 4), mode="reflect")
    out = frames.denormalize(padding.crop(padded, (8, 12)))
    np.testing.assert_array_equal(out.numpy(), img)


def test_pad_to_multiple_reflects_and_crop_restores():
    x = torch.arange(2 * 3 * 17 * 18, dtype=torch.float32).view(2, 3, 17, 18)
    padded, size = padding.pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 20, 20) and size == (17, 18)
    torch.testing.assert_close(padded[..., 17, :18], x[..., 15, :])  # row 17 mirrors row 15
    torch.testing.assert_close(padded[..., :17, 19], x[..., :, 15])  # column 19 mirrors column 15
    torch.testing.assert_close(padding.crop(padded, size), x)


@pytest.mark.parametrize("h, w", [(1, 1), (3, 2), (4, 300), (300, 2)])
def test_tiny_frames_are_padded_to_what_the_generator_needs(tiny_model, h, w):
    # the generator's reflection padding fails on sides of 4 px or less after its downsampling
    from vidgan.runtime.backends import load_backend

    backend = load_backend(tiny_model, "torch", "cpu")
    out = Stylizer(backend)(random_frames(1, h, w))
    assert out.shape == (1, h, w, 3)
    x = frames.normalize(torch.from_numpy(random_frames(1, h, w)))
    padded, _ = padding.pad_to_multiple(x, 4)
    assert min(padded.shape[-2:]) >= padding.MIN_SIDE
    assert padding.crop(backend(padded), (h, w)).shape == (1, 3, h, w)


def test_stylizer_with_identity_backend_returns_the_frames():
    img = random_frames(2, 37, 53)  # odd sizes: padded to 40x56 and cropped back
    backend = Identity(multiple=8)
    out = Stylizer(backend)(img)
    assert backend.seen.shape == (2, 3, 40, 56)
    assert out.shape == img.shape and out.dtype == torch.uint8 and out.device.type == "cpu"
    np.testing.assert_array_equal(out.numpy(), img)


def test_stylizer_pads_like_pad_to_multiple():
    img = random_frames(1, 37, 53)
    backend = Identity(multiple=8)
    Stylizer(backend)(img)
    expected, _ = padding.pad_to_multiple(frames.normalize(torch.from_numpy(img)), 8)
    torch.testing.assert_close(backend.seen, expected, atol=1e-6, rtol=0)


def test_stylizer_replicates_edges_when_the_pad_exceeds_the_frame():
    img = random_frames(1, 5, 7)
    backend = Identity(multiple=16)
    out = Stylizer(backend)(img)
    expected, _ = padding.pad_to_multiple(frames.normalize(torch.from_numpy(img)), 16)
    torch.testing.assert_close(backend.seen, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(out.numpy(), img)


def test_stylizer_processes_at_height_and_returns_input_or_output_size():
    img = np.ascontiguousarray(np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8), (48, 64)))
    img = np.repeat(img[None, :, :, None], 3, axis=-1)  # a smooth ramp: resizing keeps its values
    backend = Identity()
    out = Stylizer(backend, height=24)(img)
    assert backend.seen.shape == (1, 3, 24, 32)
    assert out.shape == img.shape
    assert np.abs(out.numpy().astype(int) - img).max() <= 6
    out = Stylizer(backend, height=24)(img[0], (30, 40))
    assert out.shape == (1, 30, 40, 3)


def test_stylizer_gives_an_fp16_backend_fp16_and_takes_fp16_back():
    img = random_frames(1, 9, 10)
    backend = Identity(input_dtype=torch.float16)
    out = Stylizer(backend)(img)
    assert backend.seen.dtype == torch.float16
    np.testing.assert_array_equal(out.numpy(), img)


def test_resize_frames_matches_float_resize():
    yy, xx = np.mgrid[0:40, 0:60]
    wave = 128 + 100 * np.sin(xx / 7) * np.cos(yy / 5)  # smooth: the filters' details don't matter
    img = np.stack([wave, 255 - wave, np.full_like(wave, 60)], -1).round().astype(np.uint8)
    u8 = torch.from_numpy(np.stack([img, img[::-1].copy()]))
    for size in [(20, 30), (80, 120)]:
        out = frames.resize_frames(u8, size)
        ref = frames.denormalize(frames.resize(frames.normalize(u8), size))
        assert out.shape == (2, *size, 3) and out.dtype == torch.uint8
        diff = (out.int() - ref.int()).abs()
        assert diff.float().mean() < 1 and diff.max() <= 4
    assert frames.resize_frames(u8, (40, 60)) is u8


def test_as_tensor_adds_the_batch_dimension_without_copying():
    img = random_frames(1, 4, 5)[0]
    t = frames.as_tensor(img, torch.device("cpu"))
    assert t.shape == (1, 4, 5, 3) and t.data_ptr() == img.ctypes.data


def test_a_read_only_array_is_taken_without_a_warning():
    import subprocess
    import sys

    # torch warns once per process, so a fresh one; np.asarray of a PIL image is read-only
    code = ("import numpy as np, torch; from vidgan.runtime import frames; "
            "img = np.zeros((4, 5, 3), np.uint8); img.flags.writeable = False; "
            "assert frames.as_tensor(img, torch.device('cpu')).shape == (1, 4, 5, 3)")
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], check=False,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.gpu
@needs_cuda
def test_cuda_stylizer_matches_the_cpu_one():
    img = random_frames(2, 37, 53)
    cpu = Stylizer(Identity("cpu"))(img)
    for dtype in (torch.float32, torch.float16):
        backend = Identity("cuda", input_dtype=dtype)
        out = Stylizer(backend)(img)
        assert out.device.type == "cuda" and backend.seen.dtype == dtype
        np.testing.assert_array_equal(out.cpu().numpy(), cpu.numpy())
