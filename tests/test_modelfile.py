"""The model file: what training hands to everything else."""

from __future__ import annotations

import pytest
import torch

from vidgan.core import modelfile, models
from vidgan.core.errors import VidganError

KWARGS = {"ngf": 4, "n_blocks": 1}


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return models.build("fast", **KWARGS).eval()


def test_round_trip_gives_identical_outputs(tmp_path, generator):
    path = modelfile.save_model(tmp_path / "g.safetensors", generator, "fast", KWARGS)
    loaded, _ = modelfile.load_model(path)
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]  # no temporary left behind


def test_fp16_file_loads_as_fp32(tmp_path, generator):
    full = modelfile.save_model(tmp_path / "g32.safetensors", generator, "fast", KWARGS)
    half = modelfile.save_model(
        tmp_path / "g16.safetensors", generator, "fast", KWARGS, dtype=torch.float16
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = modelfile.load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), generator(x), atol=2e-2, rtol=0)


def test_read_info_fields(tmp_path, generator):
    config = {"generator": "fast", "crop": 64}
    training = {"epochs": 3, "steps": 120, "final_losses": {"cycle_x": 0.2}}
    path = modelfile.save_model(
        tmp_path / "g.safetensors",
        generator,
        "fast",
        KWARGS,
        config=config,
        training=training,
        direction="painting->photo",
    )
    info = modelfile.read_info(path)
    assert (info.arch, info.kwargs, info.multiple) == ("fast", KWARGS, generator.multiple)
    assert (info.direction, info.config, info.training, info.path) == (
        "painting->photo",
        config,
        training,
        path,
    )
    assert models.count_parameters(info.build()) == models.count_parameters(generator)


def test_file_hash_follows_the_weights_not_the_bytes(tmp_path, generator):
    # safetensors writes metadata in no fixed order: two saves differ in bytes, not in hash
    a = modelfile.save_model(tmp_path / "a.safetensors", generator, "fast", KWARGS)
    b = modelfile.save_model(tmp_path / "b.safetensors", generator, "fast", KWARGS)
    with torch.no_grad():
        next(generator.parameters()).add_(1)
    c = modelfile.save_model(tmp_path / "c.safetensors", generator, "fast", KWARGS)
    assert modelfile.file_hash(a) == modelfile.file_hash(b) != modelfile.file_hash(c)


def test_bad_model_files_are_user_errors(tmp_path):
    with pytest.raises(VidganError, match="does not exist"):
        modelfile.load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(VidganError, match="not a safetensors model file"):
        modelfile.read_info(junk)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(VidganError, match="not a vidgan model file"):
        modelfile.read_info(tmp_path / "plain.safetensors")


def test_missing_bundled_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "BUNDLED", tmp_path / "vangogh-fast.safetensors")
    with pytest.raises(VidganError, match="pass --model"):
        modelfile.resolve(None)


@pytest.mark.skipif(not modelfile.BUNDLED.exists(), reason="no bundled model in this checkout")
def test_bundled_pair_loads_runs_and_fits_the_size_limit():
    G, info = modelfile.load_model()
    inverse = modelfile.BUNDLED.with_name(modelfile.BUNDLED.stem + "-F.safetensors")
    _, info_f = modelfile.load_model(inverse)
    assert (info.direction, info_f.direction) == ("photo->painting", "painting->photo")
    assert modelfile.BUNDLED.stat().st_size + inverse.stat().st_size <= 10 * 1000 * 1000
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        y = G(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and (y - x).abs().mean() > 0.01


# --- broken model files: one VidganError line when loading, whatever is wrong -------------------

def _rewritten(tmp_path, source, name: str, **metadata) -> object:
    """A copy of `source` whose metadata entries are replaced (None: removed)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as f:
        meta = {**f.metadata()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key, value in metadata.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


BROKEN = {
    "no arch": ({"arch": None}, "no 'arch'"),
    "arch not JSON": ({"arch": "{fast"}, "not JSON"),
    "arch not a table": ({"arch": '"fast"'}, 'arch must be {"name"'),
    "unknown architecture": ({"arch": '{"name": "vgg", "kwargs": {}}'}, "unknown architecture"),
    "unknown keyword": ({"arch": '{"name": "fast", "kwargs": {"wings": 2}}'}, "refuses"),
    "multiple 0": ({"multiple": "0"}, "positive whole number"),
    "multiple not a number": ({"multiple": "four"}, "positive whole number"),
    "multiple not the arch's": ({"multiple": "8"}, "needs 4"),
    "shapes of another width": ({"arch": '{"name": "fast", "kwargs": {"ngf": 8, "n_blocks": 1}}'},
                                "tensor net.1.weight is [4, 3, 7, 7]"),
    "keys of another depth": ({"arch": '{"name": "fast", "kwargs": {"ngf": 4, "n_blocks": 2}}'},
                              "missing net.11.body"),
    "config not JSON": ({"config": "{"}, "'config' metadata is not JSON"),
    "unknown direction": ({"direction": "sideways"}, "direction 'sideways'"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_metadata_is_one_error(tmp_path, generator, case):
    good = modelfile.save_model(tmp_path / "good.safetensors", generator, "fast", KWARGS)
    changes, message = BROKEN[case]
    path = _rewritten(tmp_path, good, "broken", **changes)
    with pytest.raises(VidganError, match="broken vidgan model file") as caught:
        modelfile.load_model(path)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_truncated_and_garbage_files_are_one_error(tmp_path, generator):
    good = modelfile.save_model(tmp_path / "good.safetensors", generator, "fast", KWARGS)
    raw = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(raw[:8] + bytes(range(256)) * 40)  # a header length, then noise
    for path in (cut, garbage):
        with pytest.raises(VidganError, match="not a safetensors model file"):
            modelfile.load_model(path)


def test_info_and_render_report_a_broken_file_on_one_line(tmp_path, generator, vidgan_cli, clip):
    good = modelfile.save_model(tmp_path / "good.safetensors", generator, "fast", KWARGS)
    path = _rewritten(tmp_path, good, "broken", multiple="0")
    for args in (["info", "--model", path], ["render", clip, tmp_path / "out.mp4", "--model", path]):
        code, out, err = vidgan_cli(*args)
        assert code == 2 and out == "", args
        assert err.startswith("error: ") and "broken vidgan model file" in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_a_student_written_before_skip_was_a_setting_still_loads(tmp_path):
    # the first students' files name four settings; the fifth, skip, must default to their 16
    first = {"width": 8, "n_blocks": 1, "n_context": 1, "expand": 2}
    path = modelfile.save_model(tmp_path / "s.safetensors", models.RealtimeGenerator(*first.values()),
                                "realtime", first)
    net, info = modelfile.load_model(path)
    assert info.kwargs == first and net.stem[1].out_channels == 16
