# The two commands: `make demo` runs adedge end to end on synthetic data, `make test` runs the tests.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[train,serve,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/adedge demo

test: $(STAMP)
	$(VENV)/bin/ruff check adedge tests benchmarks
	$(VENV)/bin/python -m pytest

test-fast: $(STAMP)  # the linter, and the unit tests that train nothing (about a minute)
	$(VENV)/bin/ruff check adedge tests benchmarks
	$(VENV)/bin/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) demo-output
