# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# In lineage order: train_carvana writes the checkpoint that test_carvana and inspect_layers read.
NOTEBOOKS := train_carvana test_carvana inspect_layers train_cityscapes

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
	$(BIN)/ruff check unet_lib tests benchmarks notebooks/*.py notebooks/exercises
	$(BIN)/ruff format --check unet_lib tests benchmarks notebooks/*.py notebooks/exercises
	bash .ci/check_notebook_pairs
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests
	UNET_QUICK=1 $(BIN)/python -m pytest -q -p no:cacheprovider -p tests.notebook_numbers --nbval-lax --nbval-sanitize-with .ci/nbval_sanitize.cfg \
		$(foreach nb,$(NOTEBOOKS),notebooks/$(nb).ipynb)

## browser-deps: Debian's Chromium for the JupyterLab browser test, installed when missing and possible (root or passwordless sudo, apt-get); never fails
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "browser-deps: chromium not found and could not be installed (no apt-get): the browser test will skip (fail with CI=true)"; exit 0; \
	elif [ "$$(id -u)" = 0 ]; then as_root=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	else echo "browser-deps: chromium not found and could not be installed (not root): apt-get install chromium; the browser test will skip (fail with CI=true)"; exit 0; fi; \
	echo "browser-deps: installing chromium with apt-get"; \
	($$as_root apt-get update -qq && $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "browser-deps: apt-get install chromium failed: the browser test will skip (fail with CI=true)"

lint: $(STAMP)
	$(BIN)/ruff check unet_lib tests benchmarks notebooks/*.py notebooks/exercises

## notebooks: regenerate each .ipynb from its .py, execute it in quick mode and clean it (the committed outputs);
## the kernel is stopped once every cell has run (an interrupt at a graceful shutdown is logged as an error)
notebooks: $(STAMP)
	for nb in $(NOTEBOOKS); do \
		$(BIN)/jupytext --quiet --to ipynb notebooks/$$nb.py && \
		UNET_QUICK=1 $(BIN)/jupyter nbconvert --log-level WARN --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=900 --ExecutePreprocessor.record_timing=False \
			--ExecutePreprocessor.shutdown_kernel=immediate notebooks/$$nb.ipynb && \
		$(BIN)/python .ci/clean_notebook.py notebooks/$$nb.ipynb || exit 1; \
	done

LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

## lab: JupyterLab on the notebooks, with the project's environment (no news or update pop-up over the outputs)
lab: $(STAMP) $(LAB_SETTINGS)
	$(BIN)/jupyter lab --notebook-dir=notebooks

$(LAB_SETTINGS):
	mkdir -p $(dir $@)
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

## bench: speed and memory ratios, measured side by side
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
