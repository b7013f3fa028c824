"""The command line's basics: help, light imports, `python -m vidgan`, `vidgan info`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vidgan import cli
from vidgan.core import models
from vidgan.tools import info as sysinfo

LIGHT = (
    "import sys, vidgan.cli; "
    "print(sorted(m for m in ('torch', 'cv2', 'av', 'onnx') if m in sys.modules))"
)


def test_importing_the_cli_imports_no_heavy_library():
    out = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_commands_help_imports_no_heavy_library():
    script = ("import sys; from vidgan import cli; sys.argv = ['vidgan', 'render', '--help']\n"
              "try:\n    cli.main()\nexcept SystemExit:\n    pass\n" + LIGHT.split("; ", 1)[1])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert "--backend" in out and out.strip().splitlines()[-1] == "[]"


def _listed(names) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def test_option_help_names_every_registered_choice():
    import typer.main

    from vidgan.runtime.backends import backend_names
    from vidgan.tools.bench import run as bench

    commands = typer.main.get_command(cli.app).commands
    helps = {(name, p.name): p.help for name, c in commands.items() for p in c.params}
    backends = {k: v for k, v in helps.items() if k[1] == "backend" and k[0] != "bench"}
    assert len(backends) >= 3 and set(backends.values()) == {f"{_listed(backend_names())}."}
    assert helps["bench", "what"] == f"{_listed(tuple(bench.BENCHES))}."
    assert helps["bench", "backend"].endswith(f" takes {_listed(tuple(bench.MODEL_VARIANTS))}.")
    assert helps["bench", "generator"].endswith(f": {_listed(tuple(models.GENERATORS))}.")


def test_help_lists_every_command_through_python_m():
    proc = subprocess.run(
        [sys.executable, "-m", "vidgan", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    names = [c.name or c.callback.__name__ for c in cli.app.registered_commands]
    assert {"info", "train"} <= set(names)
    for name in names:
        assert f" {name} " in proc.stdout, name


def test_info_reports_the_stack(vidgan_cli):
    import torch

    code, out, _ = vidgan_cli("info")
    assert code == 0
    labels = [line.split("  ")[0] for line in out.splitlines()]
    for label in (
        "python",
        "vidgan",
        "torch",
        "CUDA (torch build)",
        "cuDNN",
        "tensorrt",
        "onnxruntime",
        "PyAV",
        "H.264 encoding",
        "opencv",
        "mss",
        "pyvirtualcam",
    ):
        assert label in labels, label
    assert torch.__version__ in out
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in out
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "not installed: pip install 'vidgan[trt]'" in out


def test_info_model_by_name(vidgan_cli):
    import torch

    code, out, _ = vidgan_cli("info", "--model", "unet")
    assert code == 0
    with torch.device("meta"):
        net = models.build("unet")
    assert f"{models.count_parameters(net) / 1e6:.2f} M" in out
    assert f"{models.gflops(net, 256, 256):.1f}" in out
    assert "padded to 1280x768" in out  # the U-Net needs multiples of 256


def test_info_model_file(vidgan_cli, tiny_model):
    code, out, _ = vidgan_cli("info", "--model", tiny_model)
    assert code == 0
    assert '"ngf": 4' in out and "photo->painting" in out and "weights F32" in out


def test_info_bad_model_is_a_user_error(vidgan_cli, tmp_path):
    code, out, err = vidgan_cli("info", "--model", tmp_path / "nope.safetensors")
    assert code == 2 and err.startswith("error: ") and "not a generator name" in err
    assert out == ""  # checked before the report, not after it


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  GUI:                           QT5\n    QT:    YES (ver 5.15.19 )\n", "QT5"),
        ("  GUI:                           GTK3\n", "GTK3"),
        ("  GUI:                           NONE\n", None),  # opencv-python-headless
        ("  Media I/O:\n", None),
    ],
)
def test_opencv_gui_detection(text, expected):
    assert sysinfo._opencv_gui(text) == expected


@pytest.mark.parametrize("args, says", [
    (["render", "in.mp4", "out.mp4", "--height", "0"], "Invalid value for '--height'"),
    (["render", "in.mp4", "out.mp4", "--crf", "abc"], "Invalid value for '--crf'"),
    (["rendr", "in.mp4"], "No such command 'rendr'"),
    (["stylize", "--bogus"], "No such option: --bogus"),
    (["stylize"], "Missing argument"),
])
def test_usage_errors_are_one_error_line_and_exit_2(vidgan_cli, args, says):
    code, out, err = vidgan_cli(*args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert "--help" in err  # where to look


def test_help_and_no_arguments_still_print_the_help(vidgan_cli):
    code, out, _ = vidgan_cli("--help")
    assert code == 0 and "Usage: vidgan" in out and "render" in out
    code, out, _ = vidgan_cli("render", "--help")
    assert code == 0 and "--stabilize-strength" in out
    code, out, _ = vidgan_cli()
    assert "Usage: vidgan" in out and "render" in out


def test_info_says_where_the_cache_is(vidgan_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VIDGAN_ENGINES")
    code, out, _ = vidgan_cli("info")
    cache = [line for line in out.splitlines() if line.startswith("cache ")]
    assert code == 0 and len(cache) == 1
    assert str(tmp_path / "cache") in cache[0] and str(tmp_path / "cache" / "engines") in cache[0]


def test_sigterm_and_sighup_do_what_ctrl_c_does_at_the_moment():
    import os
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        cli._stop_on_signals()
        calls = []
        signal.signal(signal.SIGINT, lambda *_: calls.append("stop cleanly"))  # as live does
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        assert calls == ["stop cleanly"] * 2
        for handler in (signal.default_int_handler, signal.SIG_IGN):  # nohup, `&`: still stops
            signal.signal(signal.SIGINT, handler)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
        assert cli._signalled == signal.SIGTERM
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        cli._signalled = signal.SIGINT


def test_an_error_while_unwinding_from_a_signal_still_exits_as_interrupted(monkeypatch, capsys):
    # A signal can land inside library code (torch's mode stack) that then fails as it unwinds.
    def fails_while_interrupted(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            exc.message = "stopped: 3 images written"
            raise RuntimeError("trying to pop from empty mode stack")

    monkeypatch.setattr(cli, "_invoke", fails_while_interrupted)
    monkeypatch.setattr(cli, "_signalled", 15)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 128 + 15
    assert capsys.readouterr().err == "stopped: 3 images written\n"


def test_an_unrelated_error_is_not_taken_for_an_interrupt(monkeypatch):
    def fails(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_invoke", fails)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main()
