# sgap-plugins: `make demo` runs the main job, `make test` runs lint + tests in both envs.
SHELL := /bin/bash
COMPAT := .venv/bin/python
LATEST := .venv-latest/bin/python
export DGLBACKEND := pytorch
export SGAP_DATA_ROOT ?= $(abspath ../shared/data)
export SGAP_CACHE ?= $(abspath .cache)
# Compile the CUDA sources in the latest env (nvcc 13.0 here, no GPU needed to compile).
export CUDA_HOME ?= /usr/local/cuda
export TORCH_CUDA_ARCH_LIST ?= 9.0

.PHONY: env env-compat env-latest env-openbox demo test test-compat test-latest lint docs bench clean

env: env-compat env-latest

env-compat:
	@scripts/setup_env.sh compat

env-latest:
	@scripts/setup_env.sh latest

# OpenBox alone, for benchmarks/search_peers.py --engines openbox (not part of env or test)
env-openbox:
	@scripts/setup_openbox_env.sh

# a 60-trial search on the built-in graph (under a minute on 2 cores), its front, and its
# most accurate member retrained next to SGC and PaSca-V3
demo: env-compat
	@scripts/demo.sh .venv/bin/sgap

lint: env-compat
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test-compat: env-compat
	SGAP_REQUIRE_DGL=1 SGAP_REQUIRE_RAY=1 scripts/run_pytest.sh $(COMPAT) compat

test-latest: env-latest
	scripts/run_pytest.sh $(LATEST) latest

# Both envs are installed before any test runs, so the installs never compete for disk
# with what the tests write.
test: env lint test-compat test-latest

docs: env-compat
	.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf .venv .venv-latest .venv-openbox .cache docs/_build
