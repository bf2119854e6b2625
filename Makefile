# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv and install the package from this repo's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: demo test test-fast lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,demo,bench,hub,litert,onnx]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m visiontrain.tools.demo --workdir=$(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check --select E,F,W,I --line-length 100 visiontrain tests
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=900 -n 2 --dist loadfile --durations=15 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -m "not slow" tests

clean:
	rm -rf $(DEMO_DIR) build *.egg-info
