# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (once) and installs jaxnas with what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test test-slow
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m jaxnas.main --config=configs/nb201_naswot.py --workdir=runs/demo

# One worker per core, a whole test file per worker (module fixtures and compiles reused).
test: $(VENV)/.installed
	$(PY) -m pytest -q -rs -n auto --dist loadfile

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow
