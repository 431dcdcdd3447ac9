# handwriting_gan: every target sets up what it needs itself (a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-full lint format tensorboard notebook benchmark augmenter clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sweeps,cluster]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its pinned dependencies

train: $(STAMP) ## Train on the embedded MNIST sample (extra Hydra overrides: make train ARGS="model=mlp4")
	$(PY) -m handwriting_gan $(ARGS)

test: $(STAMP) ## Run the fast suite: in-process tests and one command-line smoke run (under 5 min on 2 cores)
	$(PY) -m pytest

test-full: $(STAMP) ## Run every test, also those that start processes or train long (what CI runs)
	$(PY) -m pytest -m "" --durations=10

lint: $(STAMP) ## Check lint and formatting with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

tensorboard: $(STAMP) ## Serve TensorBoard over every run in outputs/
	$(VENV)/bin/tensorboard --logdir outputs

benchmark: $(STAMP) ## Print the throughput table (needs MNIST under ../shared/data)
	$(PY) benchmarks/throughput.py

AUGMENTER_RUN ?= outputs/dagan_omniglot/shipped
augmenter: $(STAMP) ## Train the shipped augmenter on Omniglot's source alphabets, choose its length on their validation characters, copy it into the package (~35 min on 2 cores)
	rm -rf $(AUGMENTER_RUN)
	$(PY) -m handwriting_gan experiment=dagan_omniglot paths.data_dir=$${HWGAN_DATA_DIR:-../shared/data} hydra.run.dir=$(AUGMENTER_RUN) $(ARGS)
	cp $(AUGMENTER_RUN)/selected_generator.pt handwriting_gan/augmenters/omniglot.pt

clean: ## Remove runs, caches and build files (keeps .venv and data/)
	rm -rf outputs multirun cache .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

notebook: $(STAMP) ## Open notebooks/ in JupyterLab (installs the notebooks extra)
	$(PY) -m pip install --quiet -e '.[dev,notebooks]'
	$(VENV)/bin/jupyter lab notebooks/explore_run.ipynb
