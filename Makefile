# invbench: `make bench` runs the mini suite and writes the leaderboard; `make test` runs the tests.
# Both create .venv and install what is missing on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.browser
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: install bench report list docs test perf paper-cost clean

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

# the README's tables of tasks, attacks, defenses and metrics, regenerated from the registry and
# the YAMLs (benchmark/doc_tables.py; tests/test_doc_tables.py fails when they are stale)
docs: $(STAMP)
	$(BIN)/python -m benchmark.doc_tables

perf: $(STAMP)
	$(BIN)/python -m benchmark.perf $(ARGS)

# The paper suite's per-cell cost of gmi, kedmi and plgmi at CelebA's shapes, on the GPU when
# there is one (benchmark/paper_cost.py; on a CPU: make paper-cost ARGS="--identities 10 --steps 5")
paper-cost: $(STAMP)
	$(BIN)/python -m benchmark.paper_cost $(ARGS)

# The leaderboard's browser test drives Debian's chromium with Playwright (never Playwright's own
# browser download). Installed here where apt-get may run; elsewhere that test is skipped.
$(BROWSER_STAMP): | $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >$(VENV)/chromium-install.log 2>&1 \
	       || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
	          >>$(VENV)/chromium-install.log 2>&1; }; } \
	  || echo "chromium could not be installed (see $(VENV)/chromium-install.log): the browser test will be skipped"
	touch $@

# lint and format first (ruff, configured in pyproject.toml): seconds, and fails before the tests
test: $(STAMP) $(BROWSER_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .invbench results/*/ leaderboard/site
