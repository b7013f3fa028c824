# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

$(BIN)/vidgan: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# exactly these: they lie on the development machines' disk (any other pulls several GB)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
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

.PHONY: install demo test gpu-wheels
