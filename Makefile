# Both entry points create .venv from nothing. torch is installed first from the pinned CPU
# build; an unpinned torch would pull several GB of CUDA packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint docs bench cards clean

$(VENV)/.installed-%: setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-train
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no examples/pretrain.py

lint: $(VENV)/.installed-all
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: $(VENV)/.installed-all
	$(VENV)/bin/mkdocs build --strict --site-dir site

test: $(VENV)/.installed-all lint docs
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed-all
	$(PY) benchmarks/run.py

# Re-renders model_cards/<name>/README.md from the package's card template, the recipes and model_cards/measured/.
cards: $(VENV)/.installed-all
	$(PY) model_cards/render.py

clean:
	rm -rf $(VENV) site build *.egg-info src/*.egg-info
