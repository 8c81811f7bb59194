# The two commands: `make demo` runs adedge end to end on synthetic data, `make test` runs the tests.
VENV := .venv
TRAIN_STAMP := $(VENV)/.installed-train
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast clean

# the demo needs the training extra only (torch, OpenVINO, ...): the server's and the tests' packages come with `make test`
$(TRAIN_STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[train]"
	touch $(TRAIN_STAMP)

$(STAMP): $(TRAIN_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[train,serve,dev]"
	touch $(STAMP)

demo: $(TRAIN_STAMP)
	$(VENV)/bin/adedge demo

test: $(STAMP)
	$(VENV)/bin/ruff check adedge tests benchmarks
	$(VENV)/bin/python -m pytest

test-fast: $(STAMP)  # the linter, and the unit tests that train nothing (about a minute)
	$(VENV)/bin/ruff check adedge tests benchmarks
	$(VENV)/bin/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) demo-output
