# invbench: `make bench` runs the mini suite and writes the leaderboard; `make test` runs the tests.
# Both create .venv and install what is missing on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: install bench report list test perf clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# facenet-pytorch pins an old torch; its runtime needs are in pyproject's dependencies
	$(BIN)/python -m pip install --quiet --no-deps 'facenet-pytorch>=2.5'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/invbench bench $(ARGS)

report: $(STAMP)
	$(BIN)/invbench report

list: $(STAMP)
	$(BIN)/invbench list

perf: $(STAMP)
	$(BIN)/python -m benchmark.perf $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .invbench results/*/ leaderboard/site
