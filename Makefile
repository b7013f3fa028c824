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

.PHONY: install demo test
