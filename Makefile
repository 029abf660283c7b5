# Set-up and the two everyday jobs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CHROMIUM_STAMP := $(VENV)/.installed-chromium
# headless Chromium for tests/report/test_report_renders.py (Debian package)
CHROMIUM_PACKAGE := chromium-headless-shell
CHROMIUM_FOUND = $(shell command -v chromium-headless-shell || command -v chromium || \
	ls /usr/lib/chromium/chromium-headless-shell 2>/dev/null)
SRC := pyproject.toml CMakeLists.txt $(wildcard native/*.cpp native/*.h native/*.cmake native/*/*.cpp native/*/*.h native/*/*.cmake)

.PHONY: demo test lint typecheck bench sanitize clean fuzz chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(VENV)/bin/python $(SRC)
	$(PIP) install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install -q -e ".[test]"
	touch $@

# The report test opens the HTML report in headless Chromium. Installed with apt-get when
# missing and run as root; otherwise a message says what to install (the test then skips).
$(CHROMIUM_STAMP): $(VENV)/bin/python
	@if [ -n "$(CHROMIUM_FOUND)" ] || [ -n "$$LOWP_CHROMIUM" ]; then \
		echo "headless Chromium: $${LOWP_CHROMIUM:-$(CHROMIUM_FOUND)}"; touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(CHROMIUM_PACKAGE) for the HTML report test:"; \
		echo "  apt-get update && apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGE)"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $(CHROMIUM_PACKAGE)) && touch $@ || \
			echo "*** apt-get could not install $(CHROMIUM_PACKAGE): the HTML report test will be SKIPPED."; \
	else \
		echo "*** headless Chromium is missing: the HTML report test will be SKIPPED."; \
		echo "*** Install it as root: apt-get install --no-install-recommends $(CHROMIUM_PACKAGE)"; \
		echo "*** (or point LOWP_CHROMIUM at a Chromium binary), then run make test again."; \
	fi

chromium: $(CHROMIUM_STAMP)

demo: $(STAMP)
	$(VENV)/bin/lowp demo

lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests bench tools

typecheck: $(TEST_STAMP)
	$(PY) -m mypy

test: lint typecheck $(CHROMIUM_STAMP)
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
