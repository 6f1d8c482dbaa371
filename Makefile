# Two commands get a fresh machine from clone to result:
#   make demo   set up, start the local stack with Airflow (prints its URL and login), run the platform
#               (for now: smoke round trip, reference data seeded and loaded into Hive, the three source
#               simulators at 100k events/s for DEMO_SECONDS, then simulators and enrichment stream
#               together, until Ctrl-C)
#   make test   set up, start the stack from the tests, run every test suite
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_SECONDS ?= 30
# What the stream keeps up with beside the simulator on 2 cores today: 12k/s held, 10k/s with a margin
# (docs/performance.md).
DEMO_RATE ?= 10000

.PHONY: setup demo test unit dags integration e2e lint stack-up stack-down stack-status clean

setup: $(STAMP)

# Java 17+ and Maven must be on the machine (see README); everything else comes from PyPI and Maven Central.
$(STAMP): requirements.txt pyproject.toml
	@command -v java >/dev/null || { echo "Java 17+ is needed: install a JDK (apt-get install openjdk-17-jdk-headless)."; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch the service jars: apt-get install maven."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/tickflow stack up
	$(BIN)/tickflow smoke
	$(BIN)/tickflow topics create
	$(BIN)/tickflow schemas register
	$(BIN)/tickflow hive migrate
	$(BIN)/tickflow reference seed
	$(BIN)/tickflow reference refresh --max-drop 1
	$(BIN)/tickflow simulate --rate 100000 --duration $(DEMO_SECONDS)
	@$(BIN)/tickflow stack login
	@echo "Now the simulators at $(DEMO_RATE) events/s (what the stream sustains beside them here) and the enrichment stream, until Ctrl-C:"
	@$(BIN)/tickflow simulate --rate $(DEMO_RATE) > .tickflow/logs/demo-simulate.log 2>&1 & sim=$$!; \
	  trap "kill $$sim 2>/dev/null" EXIT INT TERM; \
	  $(BIN)/tickflow stream --samples 2

test: setup
	$(BIN)/pytest --durations=25 tests

unit: setup
	$(BIN)/pytest tests/unit

dags: setup
	$(BIN)/pytest tests/dags

integration: setup
	$(BIN)/pytest tests/integration

# Needs Debian's Chromium (apt-get install chromium); Playwright never downloads a browser here.
e2e: setup
	$(BIN)/pytest tests/e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

stack-up: setup
	$(BIN)/tickflow stack up

stack-down: setup
	$(BIN)/tickflow stack down

stack-status: setup
	$(BIN)/tickflow stack status

clean: stack-down
	rm -rf .tickflow
