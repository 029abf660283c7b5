# Set-up and the two everyday jobs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
SRC := pyproject.toml CMakeLists.txt $(wildcard native/*.cpp native/*.h native/*.cmake native/*/*.cpp native/*/*.h native/*/*.cmake)

.PHONY: demo test lint typecheck bench sanitize clean fuzz

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(VENV)/bin/python $(SRC)
	$(PIP) install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install -q -e ".[test]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/lowp demo

lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests bench tools

typecheck: $(TEST_STAMP)
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest -n 2 --hypothesis-profile=ci

# thousands of random graphs (LOWP_FUZZ_EXAMPLES per test, default 5000), lowp vs ONNX Runtime
fuzz: $(TEST_STAMP)
	$(PY) -m pytest tests/fuzz -p no:cacheprovider --hypothesis-profile=fuzz -n 2

bench: $(TEST_STAMP)
	$(PY) bench/layers.py
	$(PY) bench/models.py

clean:
	rm -rf build $(VENV) .mypy_cache .ruff_cache

sanitize: $(TEST_STAMP)
	bash tools/sanitize.sh
