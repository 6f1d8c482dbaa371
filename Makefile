# Two commands get a fresh machine from clone to result:
#   make demo   set up, start the local stack with Airflow (prints its URL and login), run the platform
#               (smoke round trip, the HBase sink deployed, reference data seeded and loaded into Hive,
#               the three source simulators at 100k events/s for DEMO_SECONDS into md.showcase, a topic
#               nothing reads, then simulators into md.events at DEMO_RATE, trades booked into PostgreSQL
#               (through Debezium into md.events), enrichment stream and the live web page together,
#               until Ctrl-C)
#   make test   set up, start the stack from the tests, run every test suite
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_SECONDS ?= 30
# What the stream keeps up with on 2 cores beside the simulator, the HBase sink and the page: 10k/s was
# no longer held once the sink ran too (docs/performance.md); 5k/s leaves a margin.
DEMO_RATE ?= 5000
# Trades booked per second into the trade-capture database beside the simulators (2% corrected, 1% cancelled).
DEMO_TRADES_RATE ?= 500
# Where the demo's own processes log: the stack's state directory (TICKFLOW_STATE_DIR, as the stack reads it).
DEMO_LOGS = $${TICKFLOW_STATE_DIR:-.tickflow}/logs

.PHONY: setup demo test test-secured test-cluster faults-cluster unit dags integration e2e faults lint stack-up stack-down stack-status clean

# The serving page's front-end libraries (uPlot) from npm, pinned by web/package-lock.json, copied into the
# package (git-ignored): the page never loads anything from a CDN. Needs Node.js and npm.
VENDOR  := src/tickflow/serving/static/vendor

# The stream's JVM operators (decode, fill, dead letters), on every tickflow Spark session's classpath
# (tickflow.spark.operator_jars); rebuilt when their sources change.
STREAM_JAR := jvm/stream/target/tickflow-stream-0.1.0.jar

setup: $(STAMP) $(VENDOR)/.installed $(STREAM_JAR)

$(STREAM_JAR): jvm/stream/pom.xml $(shell find jvm/stream/src/main -name '*.java')
	@command -v mvn >/dev/null || { echo "Maven is needed to build the stream's JVM operators: apt-get install maven."; exit 1; }
	mvn -q -f jvm/stream/pom.xml package -DskipTests

$(VENDOR)/.installed: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the serving page's chart library: apt-get install npm."; exit 1; }
	cd web && npm ci --omit=dev --quiet --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	touch $@

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
	$(BIN)/tickflow hbase migrate
	$(BIN)/tickflow connect deploy
	$(BIN)/tickflow connect deploy trades
	$(BIN)/tickflow hive migrate
	$(BIN)/tickflow reference seed
	$(BIN)/tickflow reference refresh --max-drop 1
	@echo "The simulators at full rate for $(DEMO_SECONDS) s, into md.showcase (nothing reads it: the live pipeline below starts without a backlog):"
	$(BIN)/tickflow simulate --rate 100000 --duration $(DEMO_SECONDS) --topic md.showcase
	@$(BIN)/tickflow stack login
	@echo "Now the simulators at $(DEMO_RATE) events/s (what the stream sustains beside them here), $(DEMO_TRADES_RATE) trades/s booked and the enrichment stream, until Ctrl-C:"
	@echo "The live page: http://127.0.0.1:$${TICKFLOW_PORT_SERVING:-8000}/ (log $(DEMO_LOGS)/serve.log)"
	@echo "Prometheus (every component's metrics, the alerts): http://127.0.0.1:$${TICKFLOW_PORT_PROMETHEUS:-9091}/ (docs/operations.md)"
	@$(BIN)/tickflow simulate --rate $(DEMO_RATE) > $(DEMO_LOGS)/demo-simulate.log 2>&1 & sim=$$!; \
	  $(BIN)/tickflow trades book --rate $(DEMO_TRADES_RATE) --corrections 0.02 --cancels 0.01 > $(DEMO_LOGS)/demo-trades.log 2>&1 & book=$$!; \
	  $(BIN)/tickflow serve > $(DEMO_LOGS)/serve.log 2>&1 & serve=$$!; \
	  trap "kill $$sim $$book $$serve 2>/dev/null" EXIT INT TERM; \
	  $(BIN)/tickflow stream --samples 2

# The Connect plugins' and the stream operators' JUnit tests, then pytest cheapest first (the DAG tests set AIRFLOW_HOME before anything
# imports Airflow), tests/e2e after the DAGs they drive have run once (tests/e2e/test_airflow_ui.py), and the
# fault suite last: it kills every service once and brings it back.
test: setup
	mvn -q -f connectors/hbase-sink/pom.xml test
	mvn -q -f connectors/marketevent-connect/pom.xml test
	mvn -q -f jvm/stream/pom.xml test
	$(BIN)/pytest --durations=25 tests/dags tests/unit tests/integration tests/e2e tests/faults

# The same suites against a secured stack (Kafka logins and ACLs, the serving token), in a state directory of
# its own: Kafka's storage is formatted for one mode. Stop a plain stack first (they share the ports); the
# secured one is stopped at the end, whatever the verdict.
SECURED_STATE ?= .tickflow-secured
SECURED_ENV := TICKFLOW_SECURED=true TICKFLOW_STATE_DIR=$(SECURED_STATE)
test-secured: setup
	$(SECURED_ENV) $(MAKE) test; status=$$?; $(SECURED_ENV) $(BIN)/tickflow stack down > /dev/null; exit $$status

# The cluster profile (docs/scaling.md): a Spark standalone master and two workers, three Kafka brokers, HDFS and
# two Connect workers, each on a loopback address of its own, in a state directory of its own. Stop a plain stack
# first (the edge services, registry to Airflow, share its ports); the cluster one is stopped at the end, whatever
# the verdict. test-cluster: the stream's, the backfill's and the DAGs' integration tests, then the cluster
# faults; faults-cluster (what CI runs after make test): the cluster faults alone.
CLUSTER_STATE ?= .tickflow-cluster
CLUSTER_ENV := TICKFLOW_PROFILE=cluster TICKFLOW_STATE_DIR=$(CLUSTER_STATE)
CLUSTER_TESTS := tests/integration/test_stream.py tests/integration/test_reference.py tests/integration/test_backfill.py \
	tests/integration/test_airflow_stream.py tests/integration/test_airflow_reference.py \
	tests/integration/test_hbase_maintenance.py tests/integration/test_connect.py tests/integration/test_stack_cli.py
test-cluster: setup
	$(CLUSTER_ENV) $(BIN)/pytest --durations=15 $(CLUSTER_TESTS) tests/faults; status=$$?; \
	  $(CLUSTER_ENV) $(BIN)/tickflow stack down > /dev/null; exit $$status

faults-cluster: setup
	$(CLUSTER_ENV) $(BIN)/pytest -s tests/faults; status=$$?; $(CLUSTER_ENV) $(BIN)/tickflow stack down > /dev/null; exit $$status

unit: setup
	$(BIN)/pytest tests/unit

dags: setup
	$(BIN)/pytest tests/dags

integration: setup
	$(BIN)/pytest tests/integration

# Needs Debian's Chromium (apt-get install chromium); Playwright never downloads a browser here.
e2e: setup
	$(BIN)/pytest tests/e2e

# SIGKILL of each service mid-flow, restarted as an operator would; writes .tickflow/logs/faults.md.
faults: setup
	$(BIN)/pytest -s tests/faults

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
