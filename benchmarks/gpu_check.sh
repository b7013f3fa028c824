#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: build and verify the TensorRT FP16 engine, then
# print model-only frames/s at 720p and 1080p for torch fp32 / fp16 / compiled fp16,
# onnxruntime CUDA and TensorRT FP16 (fast and resnet generators), with % of the GPU's FP16 peak
# and the TensorRT targets marked met / not met. JSON goes to $OUT if set, else benchmarks/results/.
#
#   make install && benchmarks/gpu_check.sh          # or: pip install -e '.[trt,gpu]' first
#   benchmarks/gpu_check.sh --no-compile --seconds 1 # quicker
#   benchmarks/gpu_check.sh --cpu                    # plumbing check on any machine (tiny, CPU)
#
# Without TensorRT (or onnxruntime-gpu) those rows say "not installed"; PyAV is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# Run from the checkout even when vidgan is not installed in this interpreter.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
