"""vidgan.runtime.video: the writer's contract (timestamps, odd sizes, atomic output), probe and reader."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_clip, moving_square

from vidgan.core.errors import VidganError
from vidgan.runtime import video


def _decoded(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [f for f in c.decode(s)], s


def test_writer_without_pts_writes_frames_at_rate(tmp_path):
    out = tmp_path / "out.mp4"
    with video.VideoWriter(out, 64, 48, Fraction(25)) as w:
        for i in range(10):
            w.write(moving_square(i, 64, 48))
    frames, stream = _decoded(out)
    assert len(frames) == 10
    assert stream.average_rate == 25
    assert [round(f.time * 25) for f in frames] == list(range(10))
    assert float(stream.duration * stream.time_base) == pytest.approx(10 / 25)


def test_writer_keeps_given_pts_and_durations(tmp_path):
    out = tmp_path / "vfr.mp4"
    pts = [0, 100, 150, 400, 450, 700]
    durations = [100, 50, 250, 50, 250, 120]
    with video.VideoWriter(out, 64, 48, Fraction(8), time_base=Fraction(1, 1000)) as w:
        for i, (p, d) in enumerate(zip(pts, durations)):
            w.write(moving_square(i, 64, 48), p, d)
    frames, stream = _decoded(out)
    assert [round(f.time * 1000) for f in frames] == pts
    assert float(stream.duration * stream.time_base) == pytest.approx(0.82)


def test_writer_pads_odd_sizes_to_even(tmp_path):
    out = tmp_path / "odd.mp4"
    image = moving_square(0, 85, 47)
    with video.VideoWriter(out, 85, 47, Fraction(10)) as w:
        assert (w.width, w.height) == (86, 48)
        w.write(image)
    frames, _ = _decoded(out)
    got = frames[0].to_ndarray(format="rgb24")
    assert got.shape == (48, 86, 3)
    # the padding repeats the last row and column; the picture itself is where it was
    assert np.abs(got[:47, :85].astype(int) - image).mean() < 12
    assert np.abs(got[47].astype(int) - got[46]).mean() < 12


def test_writer_keeps_colours(tmp_path):
    out = tmp_path / "colours.mp4"
    colours = [(220, 30, 30), (30, 200, 40), (40, 50, 210), (240, 220, 60)]  # R, G, B, yellow
    image = np.zeros((48, 64, 3), np.uint8)
    for i, c in enumerate(colours):
        image[:, i * 16:(i + 1) * 16] = c
    with video.VideoWriter(out, 64, 48, Fraction(10), crf=0) as w:
        w.write(image)
    frames, _ = _decoded(out)
    got = frames[0].to_ndarray(format="rgb24").astype(int)
    for i, c in enumerate(colours):  # the middle of each bar, away from chroma subsampling's edges
        assert np.abs(got[8:40, i * 16 + 4:i * 16 + 12] - c).max() <= 3, c


def test_writer_output_appears_only_on_close(tmp_path):
    out = tmp_path / "out.mp4"
    w = video.VideoWriter(out, 64, 48, Fraction(12))
    w.write(moving_square(0, 64, 48))
    assert not out.exists() and w.tmp.exists()
    w.close()
    assert out.exists() and not w.tmp.exists()


def test_writer_abort_and_exception_leave_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    w = video.VideoWriter(out, 64, 48, Fraction(12))
    w.write(moving_square(0, 64, 48))
    w.abort()
    with pytest.raises(RuntimeError), video.VideoWriter(out, 64, 48, Fraction(12)) as w:
        w.write(moving_square(0, 64, 48))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_hevc_is_tagged_for_apple_players(tmp_path):
    out = tmp_path / "out.mp4"
    with video.VideoWriter(out, 64, 48, Fraction(12), codec="hevc") as w:
        for i in range(3):
            w.write(moving_square(i, 64, 48))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.streams.video[0].codec_tag == "hvc1"


@pytest.mark.parametrize("codec", ["vp9x", "aac"])
def test_unknown_codec_is_a_user_error(tmp_path, codec):
    with pytest.raises(VidganError, match="codec"):
        video.VideoWriter(tmp_path / "out.mp4", 64, 48, Fraction(12), codec=codec)
    assert list(tmp_path.iterdir()) == []


def test_unknown_container_is_a_user_error(tmp_path):
    with pytest.raises(VidganError, match="container format"):
        video.VideoWriter(tmp_path / "out.xyz", 64, 48, Fraction(12))
    assert list(tmp_path.iterdir()) == []


def test_broken_audio_warns_once_and_keeps_the_video(tmp_path, monkeypatch, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=12, audio="aac")

    def broken(self, packet, shift):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(video._Audio, "_emit", broken)
    out = tmp_path / "out.mp4"
    with video.VideoWriter(out, 64, 48, Fraction(12), audio_from=src) as w:
        for i in range(12):
            w.write(moving_square(i, 64, 48))
    assert len(_decoded(out)[0]) == 12
    assert capsys.readouterr().err.count("audio stream is broken") == 1


def _rotated_clip(path, degrees):
    """A clip whose display matrix says: rotate `degrees` counter-clockwise to show it."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(degrees)
        img = np.zeros((48, 64, 3), np.uint8)
        img[:16, :16] = 255  # a white top-left corner
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return img


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_reader_turns_rotated_frames_upright(tmp_path, degrees):
    img = _rotated_clip(tmp_path / "rot.mp4", degrees)
    info = video.probe(tmp_path / "rot.mp4")
    assert info.rotation == degrees
    frames = list(video.VideoReader(info))
    upright = np.rot90(img, degrees // 90)
    assert (info.height, info.width) == upright.shape[:2] == frames[0].image.shape[:2]
    assert np.abs(frames[0].image.astype(int) - upright).mean() < 10


def test_reader_durations_cover_the_stream(tmp_path):
    make_clip(tmp_path / "in.mp4", frames=12, fps=12)
    info = video.probe(tmp_path / "in.mp4")
    frames = list(video.VideoReader(info))
    assert len(frames) == 12
    assert sum(f.duration for f in frames) * info.time_base == pytest.approx(1.0)


def test_probe_errors(tmp_path):
    with pytest.raises(VidganError, match="does not exist"):
        video.probe(tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VidganError, match="not a video file"):
        video.probe(tmp_path / "notes.mp4")


def test_nvenc_is_offered_only_with_an_nvidia_gpu(tmp_path):
    offered = video.usable_codecs()
    assert {"h264", "hevc"} <= set(offered)
    assert ("h264_nvenc" in offered) == video.nvenc_available()
    with pytest.raises(VidganError) as caught:
        video.encoder_name("divx")
    assert ("nvenc" in caught.value.message) == video.nvenc_available()


@pytest.mark.skipif(Path("/proc/driver/nvidia/gpus").is_dir(), reason="an NVIDIA GPU is here")
def test_nvenc_counts_as_available_only_when_an_encoder_opens():
    # FFmpeg lists h264_nvenc everywhere; an H200 even has the driver's library, but no encoder
    assert "h264_nvenc" not in av.codecs_available or not video._nvenc_opens()


@pytest.mark.gpu
@pytest.mark.skipif(not video.nvenc_available(), reason="no NVIDIA GPU with NVENC")
def test_nvenc_encodes_on_an_nvidia_gpu(tmp_path):
    with video.VideoWriter(tmp_path / "out.mp4", 64, 48, Fraction(12), codec="h264_nvenc") as w:
        for i in range(12):
            w.write(moving_square(i, 64, 48))
    assert len(list(video.VideoReader(video.probe(tmp_path / "out.mp4")))) == 12
