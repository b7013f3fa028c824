# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchvision==0.29.1

$(BIN)/vidgan: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# exactly these (pyproject.toml accepts any since): they lie on the development machines'
	# disk, and any other pulls several GB
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/vidgan

demo: install
	$(BIN)/vidgan demo --overwrite

test: install
	$(BIN)/python -m pytest -q

# Small wheels for benchmarks/gpu_check.sh on a GPU machine that has torch but can't install
# packages: about 35 MB, in a folder git ignores. GPU_PYTHON is that machine's Python version.
GPU_PYTHON ?= 3.12
GPU_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
gpu-wheels: install
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	  $(addprefix --platform ,$(GPU_PLATFORMS)) -d benchmarks/wheels \
	  safetensors onnxconverter-common av

# The installed vidgan, as a user gets it: the wheel of this checkout in a fresh environment,
# run outside the checkout (.ci/run does this after `make test`).
wheel-check: install
	.ci/wheel-check $(PYTHON) "$(TORCH)"

.PHONY: install demo test gpu-wheels wheel-check
