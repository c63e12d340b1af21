# The two commands of the README: `make run` and `make test`. Both build .venv on
# first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deep lint bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# iproute2 for the chaos harness's namespaces (installed when missing and root).
system-deps:
	.ci/system-deps

run: $(STAMP)
	$(BIN)/raftka dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy metadata storage replication api chaos bench

test: $(STAMP) system-deps lint
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m raftka.storage.bench

clean:
	rm -rf $(VENV) data .hypothesis
