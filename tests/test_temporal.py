"""Flicker reduction (vidgan.runtime.temporal) and the warping-error metric (vidgan.evaluation.flicker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_clip, moving_square

from vidgan.core.errors import VidganError
from vidgan.evaluation.flicker import format_stability, video_stability
from vidgan.runtime.temporal import Stabilizer


def textured(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture that optical flow can lock onto."""
    import cv2

    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def flicker(frame: torch.Tensor, gen: torch.Generator, sigma: float = 15.0) -> torch.Tensor:
    """The frame with per-pixel noise that changes every frame: a flickering 'stylization'."""
    noise = torch.randn(frame.shape, generator=gen) * sigma
    return (frame.float() + noise).clamp(0, 255).to(torch.uint8)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_static_scene_becomes_steady():
    frame = torch.from_numpy(textured())
    gen = torch.Generator().manual_seed(0)
    stab = Stabilizer(0.7)
    styl = [flicker(frame, gen) for _ in range(12)]
    out = [stab(frame, s) for s in styl]
    raw = np.mean([mean_abs(styl[i], styl[i - 1]) for i in range(4, 12)])
    steady = np.mean([mean_abs(out[i], out[i - 1]) for i in range(4, 12)])
    assert steady < 0.4 * raw, (steady, raw)
    assert stab.cuts == 0


def test_panning_scene_is_steadied_along_the_motion():
    scene = textured(48, 120, seed=5)
    gen = torch.Generator().manual_seed(5)
    stab = Stabilizer(0.7)
    frames = [torch.from_numpy(np.ascontiguousarray(scene[:, 3 * i:3 * i + 64])) for i in range(12)]
    styl = [flicker(f, gen) for f in frames]
    out = [stab(f, s) for f, s in zip(frames, styl, strict=True)]
    # content moves 3 px left a frame: compare frame t with frame t-1 shifted to match
    raw = np.mean([mean_abs(styl[i][:, :-3], styl[i - 1][:, 3:]) for i in range(4, 12)])
    steady = np.mean([mean_abs(out[i][:, :-3], out[i - 1][:, 3:]) for i in range(4, 12)])
    assert steady < 0.5 * raw, (steady, raw)
    assert stab.reliable > 0.8


def test_scene_cut_resets():
    a, b = torch.from_numpy(textured(seed=1)), torch.from_numpy(textured(seed=2))
    gen = torch.Generator().manual_seed(1)
    stab = Stabilizer(0.9)
    for _ in range(5):
        stab(a, flicker(a, gen))
    new = flicker(b, gen)
    assert torch.equal(stab(b, new), new)
    assert stab.cuts == 1
    assert not torch.equal(stab(b, flicker(b, gen)), new)  # and blending resumes after it


def test_moving_object_is_not_smeared():
    stab = Stabilizer(0.9)
    step = 6  # px a frame: moving_square moves 2 px per index
    for i in range(8):
        frame = torch.from_numpy(moving_square(i * step // 2, 96, 64))
        stylized = 255 - frame
        out = stab(frame, stylized)
    x0 = 4 + 7 * step
    leading = (slice(8, 24), slice(x0 + 16 - step, x0 + 16))  # background in the previous frame
    trailing = (slice(8, 24), slice(x0 - step, x0))  # square in the previous frame
    previous = 255 - torch.from_numpy(moving_square(6 * step // 2, 96, 64))
    for region in (leading, trailing):
        assert mean_abs(previous[region], stylized[region]) > 60  # the old frame differs there
        assert mean_abs(out[region], stylized[region]) < 8  # the output follows the new one


def test_strength_zero_is_the_identity():
    stab = Stabilizer(0.0)
    gen = torch.Generator().manual_seed(2)
    frame = torch.from_numpy(textured())
    for _ in range(3):
        stylized = flicker(frame, gen)
        assert stab(frame, stylized) is stylized


def test_shape_dtype_device_kept_and_batches():
    frame = torch.from_numpy(textured(36, 52))
    gen = torch.Generator().manual_seed(3)
    stab = Stabilizer(0.5)
    for _ in range(2):
        out = stab(frame, flicker(frame, gen))
        assert out.shape == frame.shape and out.dtype == torch.uint8 and out.device == frame.device
        assert out.is_contiguous()
    batch = torch.stack([frame, frame, frame])
    out = stab(batch, flicker(batch, gen))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    with pytest.raises(ValueError):
        stab(frame, batch)


def test_reset_and_bad_strength():
    frame = torch.from_numpy(textured())
    gen = torch.Generator().manual_seed(4)
    stab = Stabilizer(0.8)
    stab(frame, flicker(frame, gen))
    stab.reset()
    stylized = flicker(frame, gen)
    assert torch.equal(stab(frame, stylized), stylized)
    with pytest.raises(VidganError):
        Stabilizer(1.5)


def test_device_path_matches_the_cpu_path():
    # the torch path serves GPUs; run it on the CPU here against the OpenCV path
    scene = textured(48, 100, seed=6)
    gen = torch.Generator().manual_seed(6)
    cpu, dev = Stabilizer(0.8), Stabilizer(0.8)
    dev._opencv = lambda device: False
    for i in range(6):
        frame = torch.from_numpy(np.ascontiguousarray(scene[:, 2 * i:2 * i + 64]))
        stylized = flicker(frame, gen)
        a, b = cpu(frame, stylized), dev(frame, stylized)
        assert b.shape == a.shape and b.dtype == torch.uint8 and b.is_contiguous()
        assert (a.int() - b.int()).abs().max() <= 2
    assert not torch.equal(a, stylized)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_frames_stay_on_the_gpu():
    frame = torch.from_numpy(textured()).cuda()
    stab = Stabilizer(0.7)
    outs = [stab(frame, (frame.float() + 10 * i).clamp(0, 255).to(torch.uint8)) for i in range(3)]
    assert all(o.device.type == "cuda" and o.shape == frame.shape for o in outs)
    assert stab.reliable > 0.9


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "12"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_warping_error_ranks_stable_below_flickering(tmp_path):
    frames = [moving_square(i, 64, 48) for i in range(10)]
    rng = np.random.default_rng(0)
    flickering = [np.clip(f.astype(int) + rng.integers(-40, 40), 0, 255).astype(np.uint8)
                  for f in frames]
    video = write_clip(tmp_path / "in.mp4", frames)
    stable = write_clip(tmp_path / "stable.mp4", [255 - f for f in frames])
    bad = write_clip(tmp_path / "flicker.mp4", flickering)
    good = video_stability(video, stable, baseline=bad)
    worse = video_stability(video, bad)
    assert good["frames"] == 10 and good["size"] == [64, 48]
    assert good["warping_error_rendered"] < 0.5 * worse["warping_error_rendered"]
    assert good["warping_error_baseline"] == pytest.approx(worse["warping_error_rendered"])
    assert good["reduction_vs_baseline"] > 0.5
    assert worse["warping_error_rendered"] > 5 * worse["warping_error_input"]
    text = format_stability(good)
    assert "the floor" in text and "moving pixels" in text


def test_mismatched_frame_counts_are_one_line_errors(tmp_path):
    video = make_clip(tmp_path / "in.mp4", frames=12)
    short = make_clip(tmp_path / "short.mp4", frames=10)
    with pytest.raises(VidganError) as err:
        video_stability(video, short)
    assert "12" in err.value.message and "10" in err.value.message
    assert "\n" not in err.value.message
    with pytest.raises(VidganError, match="does not exist"):
        video_stability(video, tmp_path / "missing.mp4")


def test_render_stabilize_end_to_end(tiny_model, tmp_path, vidgan_cli):
    frames = [textured(48, 64, seed=7)] * 8  # a still scene with noise the model turns to flicker
    gen = np.random.default_rng(7)
    noisy = [np.clip(f + gen.integers(-6, 7, f.shape), 0, 255).astype(np.uint8) for f in frames]
    src = write_clip(tmp_path / "in.mp4", noisy)
    common = ["--model", tiny_model, "--backend", "torch", "--device", "cpu"]
    plain = vidgan_cli("render", src, tmp_path / "plain.mp4", *common)
    assert plain.code == 0, plain.err
    stab = vidgan_cli("render", src, tmp_path / "stab.mp4", *common, "--stabilize",
                      "--stabilize-strength", "0.8")
    assert stab.code == 0, stab.err
    report = video_stability(src, tmp_path / "stab.mp4", baseline=tmp_path / "plain.mp4")
    assert report["frames"] == 8
    assert report["reduction_vs_baseline"] > 0.3, report


def test_live_stabilize_end_to_end(tiny_model, tmp_path, monkeypatch, vidgan_cli):
    src = make_clip(tmp_path / "in.mp4", frames=12)
    rec = tmp_path / "rec.mp4"
    calls = []
    step = Stabilizer._step
    monkeypatch.setattr(Stabilizer, "_step", lambda self, *a: calls.append(1) or step(self, *a))
    result = vidgan_cli("live", "--input", src, "--no-window", "--record", rec, "--model",
                        tiny_model, "--backend", "torch", "--device", "cpu", "--stabilize")
    assert result.code == 0, result.err
    import av

    with av.open(str(rec)) as c:
        shown = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert shown and shown[0].shape == (48, 64, 3)
    assert len(calls) >= len(shown)  # every frame shown went through the stabilizer
