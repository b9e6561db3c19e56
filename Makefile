# tritlm: `make install` once, then `make demo`; `make test` runs the default suite.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
TRITLM  := $(VENV)/bin/tritlm
CACHE   := .cache

.PHONY: install native demo test test-slow bench bench-peers clean

$(VENV)/.installed: setup.py
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel cffi
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Rebuild the C core after editing native/ (install does it once).
native: install
	$(VPY) setup.py -q build_ext --inplace

test: install
	$(VPY) -m pytest -q tests

clean:
	rm -rf build *.egg-info runtime/_native* $(CACHE) bench-out
	find . -name __pycache__ -prune -exec rm -rf {} +
