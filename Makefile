# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run build test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/server run

build: $(STAMP)
	$(BIN)/server build

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff format --check server tests bench apps examples/fastapi/apps
	$(BIN)/ruff check server tests bench apps examples/fastapi/apps

typecheck: $(STAMP)
	$(BIN)/mypy server tests bench
	for app in apps/*/; do $(BIN)/mypy "$$app" || exit 1; done  # one run each: versions share module names
	for app in examples/fastapi/apps/*/; do $(BIN)/mypy "$$app" || exit 1; done  # the FastAPI example's

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/runtime.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build
