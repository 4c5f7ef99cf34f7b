# Two commands on a fresh clone: `make run` (whole workflow on the demo trial + HTML report)
# and `make test` (pytest). Both create .venv and install the project when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: run test slurm-test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,slurm]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest

# Stands up a private one-node SLURM (Debian packages, needs root) and runs the reduced demo through the
# SLURM executor, then compares its results with a local run. See docs/slurm.md.
slurm-test: $(STAMP)
	bash tests/slurm/run_demo_on_slurm.sh

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

format: $(STAMP)
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results logs .snakemake
