# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
# `make test-peers` adds the PyTorch peer libraries to .venv and runs the peer comparisons.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PEERS_STAMP := $(VENV)/.peers-installed-stamp
DOCS_STAMP := $(VENV)/.docs-installed-stamp
# Two xdist workers: the machines here have two cores (`-n auto` would take more where there are).
PYTEST_ARGS ?= -m "not slow and not peers" -n 2

.PHONY: demo test lint test-slow test-peers bench bench-gpu dist wheel-check docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The PyTorch peers (`peers` extra). torch==2.13.0 first: it is the CPU build on this machine's
# disk, and constraints-peers.txt pins its +cpu label, so no CUDA build is ever downloaded.
$(PEERS_STAMP): $(STAMP) pyproject.toml constraints.txt constraints-peers.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -c constraints-peers.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -c constraints-peers.txt -e '.[test,peers,umap]'
	touch $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/visjax demo --out out/demo

# ruff, then the import contracts of pyproject.toml [tool.importlinter] (the layers).
lint: $(STAMP)
	$(BIN)/ruff check visjax tests benchmarks examples docs
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The long cases (end-to-end runs, eight-device subprocesses, extra shapes), left out of `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not peers" -n 2

test-peers: $(PEERS_STAMP)
	$(BIN)/python -m pytest -m peers

# Benchmarks (pytest-benchmark), never part of `make test`. With the peers installed
# (`make test-peers` once) they also time Captum in the same run.
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable -s $(BENCH_ARGS)

# The one-script accelerator benchmark on jax.devices()[0] (smoke pass, then the headline cases):
# out/accelerator/accelerator.{json,md}. $(PYTHON), not the venv: a lent GPU machine brings
# its own JAX with CUDA, and the script installs nothing (README, Benchmarks).
bench-gpu:
	$(PYTHON) benchmarks/accelerator.py $(BENCH_GPU_ARGS)

# The wheel and sdist (`python -m build`, pinned in constraints.txt) into dist/.
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt build
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# The wheel installed into a fresh venv (not editable), the quick start run from outside the repo.
wheel-check:
	PYTHON=$(PYTHON) .ci/wheel-check

# The documentation site (mkdocs-material + mkdocstrings, `docs` extra) into out/site; --strict turns
# every warning (a broken link, a docstring parameter not in the signature) into an error.
$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir out/site

clean:
	rm -rf $(VENV) out .pytest_cache dist build
