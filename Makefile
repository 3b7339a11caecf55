# Two commands do everything on a fresh machine:
#   make demo   installs what is missing, then runs a whole marketplace job on a local chain
#   make test   installs what is missing, then runs the test suite
# Everything is installed inside the project: .venv/ (Python) and node_modules/ (anvil, solc, ...).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PYTEST_ARGS ?=
# The default suite runs on two pytest-xdist workers, a test file per worker at a time (module fixtures stay
# shared); most tests wait on anvil, IPFS or a browser, so two workers fit two cores. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2

.PHONY: install install-python install-node install-browser vendor-js demo test test-heavy lint compile clean install-bench bench

install: install-python install-node

install-python: $(VENV)/.installed
install-node: node_modules/.installed

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt -r requirements-dev.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Headless Chromium for the browser tests (Debian package; Playwright drives it via executable_path).
install-browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Copy htmx, Chart.js and ethers from node_modules/ into the web app's static files (committed).
vendor-js: install-node
	$(PY) scripts/vendor_js.py

compile: install
	$(VENV)/bin/marketplace compile

demo: install
	$(VENV)/bin/marketplace demo

test: install install-browser
	$(PY) -m pytest -q -m "not heavy" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-heavy: install install-browser
	$(PY) -m pytest -q -m heavy $(PYTEST_ARGS)

# Benchmarks (tables on stdout, JSON in reports/); Flower for the robustness baselines, --no-deps on purpose.
install-bench: install-python
	$(PIP) install --quiet --no-deps -r requirements-bench.txt

bench: install-bench
	$(PY) -m bench.scoring
	$(PY) -m bench.robustness

lint: install
	$(VENV)/bin/ruff check marketplace tests bench

# slither on the deployed contracts, offline with the solc-js stand-in; fails on findings not justified in
# docs/static-analysis.md.
.PHONY: slither
slither: install
	$(PY) -m scripts.slither

clean:
	rm -rf build .cache .state reports
