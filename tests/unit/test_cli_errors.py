"""Bad input at the command line: an invalid TICKFLOW_* variable, a missing file, a stack that is down.

Each comes out as one sentence on one line (what is wrong, then what to do), exit code 1 and no stack
trace, within seconds. The stack is "down" by pointing every port at one where nothing listens and the
state at an empty directory, so these tests never reach a stack running on the default ports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickflow.cli import app
from tickflow.settings import REPO_ROOT, Settings, StackPorts
from tickflow.sources.landing import write_fx_file
from tickflow.stack import services

FAST_S = 5.0  # a command that meets a closed port says so at once; a client left to retry takes 10-30 s


def closed_ports(count: int) -> list[int]:
    """Ports nothing listens on: bound all at once (so distinct), then released."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def stack_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a machine whose stack is down: every TICKFLOW_PORT_* closed, an empty state
    directory, a PostgreSQL password (so its clients try to connect), no .env file and nothing else."""
    for name in [n for n in os.environ if n.startswith("TICKFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {"TICKFLOW_STATE_DIR": str(tmp_path / "state"), "TICKFLOW_POSTGRES_PASSWORD": "unused"}
    ports = zip(StackPorts.model_fields, closed_ports(len(StackPorts.model_fields)), strict=True)
    env |= {f"TICKFLOW_PORT_{name.upper()}": str(port) for name, port in ports}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def tickflow(*args: str) -> tuple[int, str, float]:
    """Run the command in this process (typer's runner): exit code, what it printed, seconds."""
    started = time.monotonic()
    result = CliRunner().invoke(app, list(args))
    if not isinstance(result.exception, SystemExit | None):
        raise result.exception  # not handled by the command line: the test shows its trace
    return result.exit_code, result.output, time.monotonic() - started


def assert_one_sentence(code: int, output: str, *fragments: str) -> None:
    assert "Traceback" not in output
    assert code == 1, output
    assert len(output.strip().splitlines()) == 1, output
    assert output.startswith("error: ") and output.strip().endswith("."), output
    for fragment in fragments:
        assert fragment in output


@pytest.mark.parametrize(
    ("variables", "command", "fragments"),
    [
        pytest.param(
            {"TICKFLOW_PORT_KAFKA": "ninety"}, ["topics", "create"],
            ["TICKFLOW_PORT_KAFKA='ninety' is not valid", "integer", "unset it for the default 9092"],
            id="port-not-an-integer",
        ),
        pytest.param(
            {"TICKFLOW_PORT_REGISTRY": "70000"}, ["schemas", "register"],
            ["TICKFLOW_PORT_REGISTRY='70000'", "less than or equal to 65535"], id="port-out-of-range",
        ),
        pytest.param(
            {"TICKFLOW_PORT_KAFKA": "0", "TICKFLOW_PORT_CONNECT": "-1"}, ["connect", "status"],
            ["TICKFLOW_PORT_KAFKA='0'", "TICKFLOW_PORT_CONNECT='-1'", "fix them"], id="two-ports-at-once",
        ),
        pytest.param(
            {"TICKFLOW_REGISTRY_TIMEOUT_S": "-1"}, ["schemas", "register"],
            ["TICKFLOW_REGISTRY_TIMEOUT_S='-1'", "greater than 0"], id="negative-timeout",
        ),
        pytest.param(
            {"TICKFLOW_HEALTH_TIMEOUT_S": "soon"}, ["stack", "status"],
            ["TICKFLOW_HEALTH_TIMEOUT_S='soon'", "valid number"], id="float-not-a-number",
        ),
        pytest.param(
            {"TICKFLOW_HBASE_HISTORY_COMPRESSION": "BROTLI"}, ["stack", "status"],
            ["TICKFLOW_HBASE_HISTORY_COMPRESSION='BROTLI'", "'ZSTD', 'LZ4', 'SNAPPY', 'GZ' or 'NONE'"],
            id="unknown-choice",
        ),
        pytest.param(
            {"TICKFLOW_HOST": "127.0.0.1:9092"}, ["topics", "create"],
            ["TICKFLOW_HOST='127.0.0.1:9092'", "without scheme, port or path"], id="host-with-port",
        ),
        pytest.param(
            {"TICKFLOW_HOST": "http://localhost"}, ["connect", "status"], ["TICKFLOW_HOST='http://localhost'"],
            id="host-with-scheme",
        ),
        pytest.param(
            {"TICKFLOW_PORTS": "{kafka: 9092}"}, ["stack", "status"], ["TICKFLOW_PORTS is not valid JSON"],
            id="malformed-json",
        ),
        pytest.param(
            {"TICKFLOW_PORTS": '{"kafka": "x"}'}, ["smoke"], ["kafka='x' in TICKFLOW_PORTS", "integer"],
            id="bad-key-in-json",
        ),
        pytest.param(
            {"TICKFLOW_STATE_DIR": str(REPO_ROOT / "pyproject.toml")}, ["stack", "status"],
            ["TICKFLOW_STATE_DIR=", "a file, not a directory"], id="state-dir-is-a-file",
        ),
        pytest.param(
            {"TICKFLOW_STREAM_MAX_OFFSETS_PER_TRIGGER": "0"}, ["snapshot", "take"],
            ["TICKFLOW_STREAM_MAX_OFFSETS_PER_TRIGGER='0'", "greater than 0"], id="stream-setting",
        ),
        pytest.param(
            {"TICKFLOW_HBASE_SINK_TASKS": "two"}, ["connect", "deploy"], ["TICKFLOW_HBASE_SINK_TASKS='two'"],
            id="sink-setting",
        ),
        pytest.param(
            {"TICKFLOW_TRADES_SOURCE_PARTITIONS": "-3"}, ["connect", "status", "trades"],
            ["TICKFLOW_TRADES_SOURCE_PARTITIONS='-3'"], id="source-setting",
        ),
        pytest.param(
            {"TICKFLOW_BACKFILL_CHUNK_EVENTS": "0"}, ["backfill", "--start", "2026-01-01", "--end", "2026-01-02"],
            ["TICKFLOW_BACKFILL_CHUNK_EVENTS='0'"], id="backfill-setting",
        ),
        pytest.param(
            {"TICKFLOW_SERVING_REFERENCE_FROM_HIVE": "maybe"}, ["serve"],
            ["TICKFLOW_SERVING_REFERENCE_FROM_HIVE='maybe'", "valid boolean"], id="serving-setting",
        ),
        pytest.param(
            {"TICKFLOW_SECURED": "maybe"}, ["serve"],
            ["TICKFLOW_SECURED='maybe'", "valid boolean", "unset it for the default False"], id="secured-mode",
        ),
        pytest.param(
            {"TICKFLOW_SERVING_TOKEN": "secret"}, ["serve"],
            ["TICKFLOW_SERVING_TOKEN is not valid (a token is at least 16"], id="short-serving-token",
        ),
    ],
)  # fmt: skip
def test_an_invalid_variable_is_named_with_its_value_and_what_it_should_be(
    stack_down: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    command: list[str],
    fragments: list[str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, output, _ = tickflow(*command)
    assert_one_sentence(code, output, *fragments)


@pytest.mark.parametrize(
    ("command", "fragments"),
    [
        pytest.param(["simulate", "--rate", "-5"], ["--rate must be positive, got -5.0"], id="negative-rate"),
        pytest.param(["simulate", "--quotes-rate", "-5"], ["--quotes-rate must be positive"],
                     id="negative-source-rate"),
        pytest.param(["simulate", "--instruments", "0"], ["--instruments must be at least 1"], id="no-instruments"),
        pytest.param(["simulate", "--duration", "-1"], ["--duration must not be negative"], id="negative-duration"),
        pytest.param(["simulate", "--corrupt", "2"], ["--corrupt is a fraction between 0 and 1"], id="fraction"),
        pytest.param(["trades", "book", "--rate", "-1"], ["--rate must be positive"], id="negative-booking-rate"),
        pytest.param(["backfill", "--start", "tomorrow", "--end", "2026-01-02"], ["not a time", "ISO 8601"],
                     id="not-a-time"),
        pytest.param(["backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--target", "hdfs"],
                     ["'hdfs' is not one of hbase, archive, both"], id="unknown-target"),
        pytest.param(["stack", "logs", "zookeeper"], ["no service called 'zookeeper'", "choose one of"],
                     id="unknown-service"),
    ],
)  # fmt: skip
def test_an_invalid_option_is_said_before_any_service_is_asked(
    stack_down: dict[str, str], command: list[str], fragments: list[str]
) -> None:
    code, output, _ = tickflow(*command)
    assert_one_sentence(code, output, *fragments)


def broken_schemas(directory: Path) -> None:
    """A copy of schemas/ whose MarketEvent is not JSON."""
    directory.mkdir()
    for path in (REPO_ROOT / "schemas").glob("*.avsc"):
        (directory / path.name).write_text(path.read_text())
    (directory / "tickflow.md.MarketEvent.avsc").write_text('{"type": "record", ')


@pytest.mark.parametrize(
    ("variables", "command", "fragments"),
    [
        pytest.param({"TICKFLOW_SCHEMAS_DIR": "nowhere"}, ["schemas", "register"],
                     ["There is no schema directory nowhere", "TICKFLOW_SCHEMAS_DIR"], id="schemas-register"),
        pytest.param({"TICKFLOW_SCHEMAS_DIR": "nowhere"}, ["simulate", "--duration", "1"],
                     ["There is no schema directory nowhere"], id="simulate"),
        pytest.param({"TICKFLOW_SCHEMAS_DIR": "broken"}, ["schemas", "register"],
                     ["tickflow.md.MarketEvent.avsc is not a valid Avro schema (", "fix the file"],
                     id="schema-not-json"),
        pytest.param({"TICKFLOW_HIVE_DDL_DIR": "nowhere"}, ["hive", "migrate"],
                     ["There is no migrations directory nowhere", "TICKFLOW_HIVE_DDL_DIR"], id="hive-migrate"),
        pytest.param({"TICKFLOW_STREAM_ENRICHMENT_SQL": "nowhere.sql"},
                     ["backfill", "--start", "2026-01-01", "--end", "2026-01-02"],
                     ["There is no enrichment SQL at nowhere.sql", "TICKFLOW_STREAM_ENRICHMENT_SQL"], id="backfill"),
        pytest.param({}, ["reference", "refresh"], ["No FX file in", "tickflow reference seed"], id="fx-file"),
        pytest.param({}, ["snapshot", "take"], ["There is no stream state in", "run the stream first"],
                     id="checkpoint"),
        pytest.param({}, ["stack", "logs", "kafka"], ["kafka has no log yet", "tickflow stack up kafka"], id="log"),
        pytest.param({}, ["stack", "login"], ["Airflow has no logins yet", "tickflow stack up"], id="login"),
    ],
)  # fmt: skip
def test_a_missing_file_is_named_with_what_provides_it(
    stack_down: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variables: dict[str, str],
    command: list[str],
    fragments: list[str],
) -> None:
    if variables.get("TICKFLOW_SCHEMAS_DIR") == "broken":
        broken_schemas(tmp_path / "broken")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, output, _ = tickflow(*command)
    assert_one_sentence(code, output, *fragments)


CONNECT_DOWN = ["Kafka Connect at http://127.0.0.1:", "tickflow stack up connect"]
HIVE_DOWN = ["HiveServer2 at 127.0.0.1:", "tickflow stack up"]
POSTGRES_DOWN = ["PostgreSQL at 127.0.0.1:", "is not reachable", "tickflow stack up postgres"]


@pytest.mark.parametrize(
    ("command", "fragments"),
    [
        pytest.param(["topics", "create"], ["kafka is not running", "tickflow stack up kafka"], id="topics-create"),
        pytest.param(["schemas", "register"], ["registry is not running", "tickflow stack up registry"],
                     id="schemas-register"),
        pytest.param(["simulate", "--duration", "1"], ["kafka is not running"], id="simulate"),
        pytest.param(["smoke", "--count", "1"], ["kafka is not running"], id="smoke"),
        pytest.param(["stream", "status"], ["kafka is not running"], id="stream-status"),
        pytest.param(["connect", "status"], CONNECT_DOWN, id="connect-status"),
        pytest.param(["connect", "deploy"], CONNECT_DOWN, id="connect-deploy"),
        pytest.param(["connect", "deploy", "trades"], POSTGRES_DOWN, id="connect-deploy-trades"),
        pytest.param(["connect", "delete"], CONNECT_DOWN, id="connect-delete"),
        pytest.param(["hive", "migrate"], HIVE_DOWN, id="hive-migrate"),
        pytest.param(["snapshot", "list"], HIVE_DOWN, id="snapshot-list"),
        pytest.param(["hbase", "reconcile"], HIVE_DOWN, id="hbase-reconcile"),
        pytest.param(["hbase", "tables"], ["Thrift server at 127.0.0.1:", "tickflow stack up hbase-thrift"],
                     id="hbase-tables"),
        pytest.param(["hbase", "compact"], ["hbase is not running", "tickflow stack up hbase"], id="hbase-compact"),
        pytest.param(["trades", "prepare"], POSTGRES_DOWN, id="trades-prepare"),
        pytest.param(["trades", "status"], POSTGRES_DOWN, id="trades-status"),
        pytest.param(["trades", "book", "--count", "1"], POSTGRES_DOWN, id="trades-book"),
        pytest.param(["reference", "seed"], POSTGRES_DOWN, id="reference-seed"),
        pytest.param(["reference", "change", "--listings", "1"], POSTGRES_DOWN, id="reference-change"),
        pytest.param(["reference", "refresh"], ["metastore is not running", "tickflow stack up metastore"],
                     id="reference-refresh"),
        pytest.param(["backfill", "--start", "2026-01-01", "--end", "2026-01-02"], ["kafka is not running"],
                     id="backfill"),
    ],
)  # fmt: skip
def test_a_command_whose_service_is_down_names_it_at_once(
    stack_down: dict[str, str], command: list[str], fragments: list[str]
) -> None:
    if command == ["reference", "refresh"]:  # past its files, to the services
        write_fx_file(Settings(), {"USD": 1.0})
    code, output, seconds = tickflow(*command)
    assert_one_sentence(code, output, *fragments)
    assert seconds < FAST_S, f"{' '.join(command)} took {seconds:.1f}s to say {output}"


def test_stack_status_shows_every_service_stopped(stack_down: dict[str, str]) -> None:
    code, output, seconds = tickflow("stack", "status")
    assert code == 1, output  # documented: 1 unless every service is healthy
    assert "Traceback" not in output
    assert output.count("stopped") == len(services(Settings())), output
    assert seconds < FAST_S


def test_status_commands_answer_on_stdout_and_in_json(stack_down: dict[str, str]) -> None:
    """Data on stdout (a table, or JSON with --json), so a script or `| grep` gets it; exit codes as without."""
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 1 and result.stdout.count("stopped") == len(services(Settings())), result.output
    result = CliRunner().invoke(app, ["stack", "status", "--json"])
    assert result.exit_code == 1, result.output
    assert [(row["name"], row["state"]) for row in json.loads(result.stdout)] == [
        (service.name, "stopped") for service in services(Settings())
    ]


@pytest.mark.parametrize(
    ("variables", "command", "fragments"),
    [
        pytest.param({"TICKFLOW_PORT_KAFKA": "ninety"}, ["topics", "create"], ["TICKFLOW_PORT_KAFKA='ninety'"],
                     id="invalid-variable"),
        pytest.param({}, ["topics", "create"], ["kafka is not running"], id="kafka-down"),
        pytest.param({}, ["schemas", "register"], ["registry is not running"], id="registry-down"),
    ],
)  # fmt: skip
def test_the_installed_command_prints_the_sentence_alone(
    stack_down: dict[str, str], variables: dict[str, str], command: list[str], fragments: list[str]
) -> None:
    """As a person runs it (a process of its own): nothing else reaches the terminal, no client's log lines."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tickflow.cli", *command],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_sentence(done.returncode, done.stdout + done.stderr, *fragments)
    assert time.monotonic() - started < 3 * FAST_S  # the interpreter and its imports start first


def raised_in_cli(error: BaseException, capsys: pytest.CaptureFixture[str]) -> str:
    """What the command line says of an error a command did not handle itself."""
    import typer

    from tickflow.cli import speaking_errors

    with pytest.raises(typer.Exit) as exited, speaking_errors():
        raise error
    assert exited.value.exit_code == 1
    return capsys.readouterr().err


def test_a_client_that_reaches_no_service_names_the_service_from_its_address(
    stack_down: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """After the check at the start (say, the registry stopped since), the client's own error is said."""
    import httpx

    url = f"http://127.0.0.1:{stack_down['TICKFLOW_PORT_REGISTRY']}/apis/ccompat/v7/subjects"
    error = httpx.ConnectError("[Errno 111] Connection refused", request=httpx.Request("GET", url))
    output = raised_in_cli(error, capsys)
    assert_one_sentence(1, output, "registry at 127.0.0.1:", "(ConnectError)", "tickflow stack up registry")


def test_a_kafka_client_that_reaches_no_broker_names_kafka(
    stack_down: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from confluent_kafka import KafkaError, KafkaException

    error = RuntimeError("while listing topics")
    error.__cause__ = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    output = raised_in_cli(error, capsys)
    assert_one_sentence(1, output, f"kafka at 127.0.0.1:{stack_down['TICKFLOW_PORT_KAFKA']}", "stack up kafka")


def test_a_refused_connection_without_an_address_points_at_stack_status(
    stack_down: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    output = raised_in_cli(ConnectionRefusedError(111, "Connection refused"), capsys)
    assert_one_sentence(1, output, "ConnectionRefusedError", "`tickflow stack status`", "`tickflow stack up`")


@pytest.mark.parametrize("library", ["thrift", "thriftpy2"])
def test_a_thrift_server_that_does_not_answer_points_at_stack_status(
    library: str, stack_down: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """pyhive (HiveServer2) and happybase (HBase) each raise their own library's transport error."""
    if library == "thrift":
        from thrift.transport.TTransport import TTransportException
    else:
        from thriftpy2.transport import TTransportException  # type: ignore[assignment]
    output = raised_in_cli(TTransportException(message="Could not connect"), capsys)
    assert_one_sentence(1, output, "TTransportException", "`tickflow stack status`", "`tickflow stack up`")


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("another")], ids=["value-error", "key-error"])
def test_a_bug_keeps_its_trace(error: Exception) -> None:
    from tickflow.cli import speaking_errors

    with pytest.raises(type(error)), speaking_errors():
        raise error
