# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint notebooks sync-notebooks lab bench browser-deps clean

$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## demo: train a small U-Net on the sample (or real) Carvana data and report Dice vs baselines
demo: $(STAMP)
	$(BIN)/python -m unet_lib demo

## test: lint, notebook pairs, the unit tests and the notebooks
test: $(STAMP) browser-deps
	$(BIN)/ruff check unet_lib tests benchmarks notebooks/*.py
	$(BIN)/ruff format --check unet_lib tests benchmarks notebooks/*.py
	bash .ci/check_notebook_pairs
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests
	UNET_QUICK=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with .ci/nbval_sanitize.cfg notebooks/*.ipynb

## browser-deps: Debian's Chromium for the JupyterLab browser test
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

lint: $(STAMP)
	$(BIN)/ruff check unet_lib tests benchmarks notebooks/*.py

## notebooks: regenerate each .ipynb from its .py and execute it in quick mode (the committed outputs)
notebooks: $(STAMP)
	for py in notebooks/*.py; do \
		$(BIN)/jupytext --quiet --to ipynb $$py && \
		UNET_QUICK=1 $(BIN)/jupyter nbconvert --log-level WARN --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=900 $${py%.py}.ipynb || exit 1; \
	done

## lab: JupyterLab on the notebooks, with the project's environment
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

## bench: speed and memory ratios, measured side by side
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
