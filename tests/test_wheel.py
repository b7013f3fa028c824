"""The wheel built from this checkout holds what an installed vidgan needs: the recipes, the
bundled model files and their card (.ci/wheel-check then installs it and runs it)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_recipes_weights_and_the_model_card(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("vidgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {Path(n).name for n in names if n.startswith("vidgan/train/recipes/")}
    assert recipes >= {"vangogh-fast.toml", "vangogh-realtime.toml", "vangogh-resnet.toml"}
    assert recipes == {p.name for p in (ROOT / "vidgan/train/recipes").iterdir()} - {"__pycache__"}
    assert {f"vidgan/weights/{name}.safetensors" for name in
            ("vangogh-fast", "vangogh-fast-F", "vangogh-realtime")} <= names
    assert "vidgan/weights/MODEL_CARD.md" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist: torch")]
    assert requires and all("==" not in line for line in requires)  # a user's own torch stays
