"""benchmarks/gpu_check.py rehearsed on the CPU (--cpu): one JSON whose every row is measured or
says why not, also without safetensors and PyAV; the TensorRT targets' verdicts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidgan.core import models
from vidgan.runtime.export.engines import missing_requirements

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, one_thread) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OUT", raising=False)  # set on a device machine: the JSON would go there
        assert gpu_check.main(["--cpu", "--out", str(out)]) == 0
    return json.loads((out / "gpu_check_cpu.json").read_text())


def test_the_rehearsal_has_every_row(rehearsal):
    expected = [("model", g, v) for g in gpu_check.GENERATORS for v in gpu_check.VARIANTS]
    expected += [("render", None, "auto"), ("live", None, "auto"), ("train", "resnet", "train"),
                 ("train", "resnet", "train --resume")]
    assert [(r["section"], r.get("generator"), r["backend"]) for r in rehearsal["rows"]] == expected
    for row in rehearsal["rows"]:
        assert row["status"] in ("ok", "not measured"), row
        if row["status"] != "ok":
            assert isinstance(row["reason"], str) and row["reason"], row
    assert rehearsal["versions"]["torch"] == torch.__version__
    assert rehearsal["machine"]["device"] == "cpu" and rehearsal["matmul_tflops"]["fp32"] > 0


def test_the_rehearsal_measures_what_runs_on_a_cpu(rehearsal):
    rows = {(r["section"], r.get("generator"), r["backend"]): r for r in rehearsal["rows"]}
    generators = [g for g in gpu_check.GENERATORS if g in models.REGISTRY]
    for generator in generators:
        for variant in ("torch fp32", "onnxruntime CUDA"):
            row = rows[("model", generator, variant)]
            assert row["status"] == "ok" and row["fps"] > 0 and row["tflops"] > 0, row
            assert row["peak_precision"] == "fp32" and row["percent_of_peak"] > 0
            assert row["psnr_db_vs_fp32"] > 40  # fp32 either way: the same images
        assert rows[("model", generator, "TensorRT FP16")]["reason"] == missing_requirements()
        assert "CUDA GPU" in rows[("model", generator, "torch CUDA graphs")]["reason"]
    for generator in set(gpu_check.GENERATORS) - set(generators):
        assert "not in this version" in rows[("model", generator, "torch fp32")]["reason"]
    render = rows[("render", None, "auto")]
    assert render["status"] == "ok" and render["frames"] == 12 and render["fps"] > 0
    assert 0 < render["model_busy_fraction"] <= 1 and render["verdict"]
    live = rows[("live", None, "auto")]
    assert live["status"] == "ok" and live["shown"] > 0
    assert 0 < live["latency_p50_ms"] <= live["latency_p95_ms"]
    train, resume = rows[("train", "resnet", "train")], rows[("train", "resnet", "train --resume")]
    assert train["status"] == resume["status"] == "ok"
    assert (train["step_after"], resume["step_after"]) == (2, 3) and resume["steps_per_s"] > 0


def test_missing_packages_are_rows_that_say_so_not_an_abort(tmp_path):
    # A GPU machine with torch alone: no safetensors (no model file can be written) and no PyAV.
    code = ("import runpy, sys; sys.modules['safetensors'] = sys.modules['av'] = None; "
            f"sys.argv = ['gpu_check.py', '--cpu', '--out', {str(tmp_path / 'elsewhere')!r}]; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "gpu_check_cpu.json").read_text())  # $OUT wins
    reasons = {(r["section"], r.get("generator"), r["backend"]): r.get("reason", "")
               for r in report["rows"]}
    assert all(r["status"] == "not measured" for r in report["rows"])
    assert reasons[("model", "fast", "torch fp32")].startswith("needs safetensors")
    assert reasons[("render", None, "auto")].startswith("needs av")
    assert reasons[("live", None, "auto")].startswith("needs av")
    assert "make gpu-wheels" in reasons[("train", "resnet", "train")]
    assert not (tmp_path / "elsewhere").exists()


def resnet_rows(**measured) -> list[dict]:
    names = {"fp32": "torch fp32", "fp16": "torch fp16", "trt": "TensorRT FP16"}
    return [{"section": "model", "generator": "resnet", "size": "1280x720", "backend": names[k],
             "status": "ok", "fps": fps, "tflops": fps * 1.39} for k, fps in measured.items()]


def test_tensorrt_targets_are_marked_met_and_not_met():
    peak = {"fp16": 790.0}
    met = gpu_check.targets(resnet_rows(fp32=50, fp16=120, trt=300), peak, (720, 1280))
    assert [t["status"] for t in met] == ["met", "met", "met"]
    assert met[2]["value"] == pytest.approx(100 * 300 * 1.39 / 790, abs=0.01)
    missed = gpu_check.targets(resnet_rows(fp32=50, fp16=120, trt=150), peak, (720, 1280))
    assert [t["status"] for t in missed] == ["not met", "not met", "not met"]
    absent = gpu_check.targets(resnet_rows(fp32=50, fp16=120), peak, (720, 1280))
    assert all(t["status"].startswith("not measured") for t in absent)
