# The two set-up commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/qkdctl run lab_configs/sim_bench.toml --out runs/latest; rc=$$?; \
	$(VENV)/bin/qkdctl report runs/latest && exit $$rc

test: install
	$(PY) -m pytest

bench: install
	$(VENV)/bin/qkdctl bench all

clean:
	rm -rf $(VENV) build *.egg-info
