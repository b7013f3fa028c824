#!/usr/bin/env bash
# The GPU check in one command, for a machine with an NVIDIA GPU where torch is installed:
# vidgan's own backends (torch fp32/fp16/compiled/CUDA graphs, onnxruntime CUDA, TensorRT FP16)
# on the fast, resnet and real-time generators at 720p and 1080p; `vidgan render` at 1080p with
# the GPU's busy share; `vidgan live` at 720p with latency p50/p95; a short resnet training run
# and its --resume. One JSON, with the machine and the versions, goes to $OUT when set, else to
# --out DIR (default runs/gpu-check/). Whatever is missing is a row that says why. About 7 min.
#
#   benchmarks/gpu_check.sh                 # in a checkout whose vidgan is installed, or not
#   benchmarks/gpu_check.sh --cpu           # the rehearsal on any machine (tiny sizes, seconds)
#
# A machine that can't install packages: run `make gpu-wheels` where pip works and bring
# benchmarks/wheels/ along; they are installed from there (no index) into a private folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# Run from the checkout even when vidgan is not installed in this interpreter.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "benchmarks/wheels/*.whl" >/dev/null; then
  site="$(mktemp -d)/site"
  # --no-deps: the wheels were chosen to fill the gaps of a machine that has torch and numpy
  if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
       benchmarks/wheels/*.whl; then
    export PYTHONPATH="$PWD:$site${PYTHONPATH#"$PWD"}"
  else
    echo "warning: the wheels in benchmarks/wheels/ did not install; rows that need them say so" >&2
  fi
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
