"""enrichment_stream DAG on the real stack: start, events flow, kill -9 and restart, no second copy, stop.

The tests run in order and share the one stream of the state directory. The DAG is unpaused, so its
5-minute watchdog may run in between; the assertions hold whichever run does the start.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer

from tests.support.airflow_api import AirflowApi
from tests.support.fill import expected_from_input
from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tickflow.fill.snapshot import committed, find_snapshot, snapshot_state
from tickflow.processes import session_members
from tickflow.settings import Settings
from tickflow.stack import supervisor
from tickflow.stream.control import EnrichmentStream, Verdict, high_watermarks, lag_of

pytestmark = pytest.mark.integration
DAG = "enrichment_stream"
BACKFILL_DAG = "backfill"
SNAPSHOT_DAG = "state_snapshot"


@pytest.fixture(scope="module")
def airflow(stack: Settings) -> Iterator[AirflowApi]:
    # Unpausing lets the 5-minute watchdog start the stream at once: its topics and schemas must exist.
    for command in (("topics", "create"), ("schemas", "register"), ("hive", "migrate")):
        result = tickflow(*command, check=False)
        assert result.returncode == 0, result.stderr
    api = AirflowApi(stack)
    api.wait_for_dag(DAG)
    api.set_paused(DAG, False)
    yield api
    for dag_id in (DAG, SNAPSHOT_DAG):
        api.set_paused(dag_id, True)
    EnrichmentStream(stack).stop(grace_s=30)


def copies(settings: Settings) -> set[int]:
    """Sessions running the enrichment stream of this state directory, found by their marker."""
    control = EnrichmentStream(settings).control
    sessions = set()
    for pid in control._marked_processes():
        try:
            sessions.add(os.getsid(pid))
        except ProcessLookupError:
            continue
    return sessions


def kill_9(sid: int) -> None:
    """kill -9 of every process of the app (spark-submit's JVM, the Python driver, the workers), until gone.

    Waits for this copy only: the watchdog may already be starting the next one.
    """
    while members := session_members(sid):
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def enriched_total(settings: Settings) -> int:
    consumer = Consumer({**as_admin(settings), "group.id": "tickflow-test-watermarks"})
    try:
        return sum(high_watermarks(consumer, "md.enriched").values())
    finally:
        consumer.close()


def feed(count: int) -> None:
    result = tickflow("simulate", "--count", str(count), "--rate", "5000", check=False)
    assert result.returncode == 0, result.stderr


def wait_for_enriched(settings: Settings, above: int, timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    while (total := enriched_total(settings)) <= above:
        assert time.monotonic() < deadline, f"no new records in md.enriched within {timeout_s}s"
        time.sleep(3)
    return total


def run(airflow: AirflowApi, action: str) -> tuple[str, str]:
    run_id = airflow.trigger(DAG, {"action": action})
    return run_id, airflow.wait(DAG, run_id)


def test_ensure_starts_the_app_and_events_flow_to_md_enriched(airflow: AirflowApi, stack: Settings) -> None:
    EnrichmentStream(stack).stop(grace_s=30)
    before = enriched_total(stack)
    feed(5000)  # input waiting, so the first micro-batch has work
    run_id, state = run(airflow, "ensure")
    log = airflow.task_log(DAG, run_id, "manage_stream") + airflow.task_log(DAG, run_id, "check_stream_health")
    assert state == "success", log
    assert "enrichment stream STARTED" in log or "enrichment stream RUNNING" in log
    assert "enrichment stream HEALTHY" in log
    assert len(copies(stack)) == 1
    wait_for_enriched(stack, before)


def _direct_start(_: int) -> bool:
    return EnrichmentStream(Settings()).start().started


def test_after_kill_9_racing_ensures_restart_one_copy_from_its_checkpoint(airflow: AirflowApi, stack: Settings) -> None:
    stream = EnrichmentStream(stack)
    record = stream.control.running()
    assert record is not None
    before_kill = stream.progress()
    assert before_kill is not None and before_kill.batch_id is not None
    last_batch = before_kill.batch_id
    kill_9(record.pid)
    before = enriched_total(stack)
    feed(2000)

    # Two DAG runs and three starters outside Airflow (as a duplicated task would be) race for the start.
    runs = [airflow.trigger(DAG, {"action": "ensure"}) for _ in range(2)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        direct = pool.map(_direct_start, range(3))
    states = [airflow.wait(DAG, run_id) for run_id in runs]
    logs = [airflow.task_log(DAG, run_id, "manage_stream") for run_id in runs]
    assert states == ["success", "success"], logs
    started = sum(direct) + sum("enrichment stream STARTED" in log for log in logs)
    assert started <= 1, (direct, logs)  # 0 only when the watchdog's scheduled run won the race
    assert len(copies(stack)) == 1
    restarted = stream.control.running()
    assert restarted is not None and restarted.pid != record.pid

    wait_for_enriched(stack, before)
    # A batch's records are visible when its tasks commit, its progress a moment later, when the batch ends; the
    # first batch after the restart may also be the killed copy's last, run again (its new records are skipped).
    deadline = time.monotonic() + 120
    while (progress := stream.progress()) is None or progress.batch_id is None or progress.batch_id <= last_batch:
        assert time.monotonic() < deadline, f"no batch after {last_batch} within 120 s: {progress}"
        time.sleep(1)
    assert progress.written_at > restarted.started_at
    assert progress.batch_id > last_batch  # batch ids continue: the checkpoint was picked up


def test_a_scheduler_killed_in_the_middle_of_a_restart_leaves_one_copy(airflow: AirflowApi, stack: Settings) -> None:
    """apache/airflow#17479: the task dies with the scheduler's workers, its retry runs the restart again."""
    scheduler = supervisor(stack)
    run_id = airflow.trigger(DAG, {"action": "restart"})
    deadline = time.monotonic() + 120
    while airflow.task_state(DAG, run_id, "manage_stream") != "running":
        assert time.monotonic() < deadline, "manage_stream did not start within 2 minutes"
        time.sleep(0.2)
    pid = scheduler.running_pid("airflow-scheduler")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the scheduler, its LocalExecutor workers and the task they run
    while scheduler.running_pid("airflow-scheduler") is not None:
        time.sleep(0.2)
    up = tickflow("stack", "up", "airflow-scheduler", check=False)
    assert up.returncode == 0, up.stderr

    assert airflow.wait(DAG, run_id, timeout_s=900) == "success", airflow.task_log(DAG, run_id, "manage_stream")
    assert len(copies(stack)) == 1


def wait_caught_up(settings: Settings, timeout_s: float = 300) -> None:
    """Until the running stream's last micro-batch ended at md.events' high watermarks."""
    stream = EnrichmentStream(settings)
    consumer = Consumer({**as_admin(settings), "group.id": "tickflow-test-watermarks"})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            progress, record = stream.progress(), stream.control.running()
            marks = high_watermarks(consumer, "md.events")
            if record and progress and progress.written_at > record.started_at:
                if lag_of(progress.end_offsets, marks) == 0:
                    return
            assert time.monotonic() < deadline, f"the stream did not catch up within {timeout_s}s"
            time.sleep(2)
    finally:
        consumer.close()


def test_a_restored_snapshot_goes_on_as_if_the_stream_had_never_stopped(airflow: AirflowApi, stack: Settings) -> None:
    """Snapshot, more events, restore: the new checkpoint starts at the snapshot's offsets with its registers,
    so its state ends equal to the snapshot plus an independent fill of everything after those offsets."""
    airflow.wait_for_dag(SNAPSHOT_DAG)
    stream = EnrichmentStream(stack)
    feed(2000)
    wait_caught_up(stack)
    snapshot_id = f"test-{uuid.uuid4().hex[:8]}"
    run_id = airflow.trigger(SNAPSHOT_DAG, {"action": "snapshot", "snapshot_id": snapshot_id})
    state = airflow.wait(SNAPSHOT_DAG, run_id)
    log = airflow.task_log(SNAPSHOT_DAG, run_id, "export_snapshot")
    assert state == "success", log
    assert f"state snapshot {snapshot_id}:" in log and "retention" in log
    assert airflow.task_state(SNAPSHOT_DAG, run_id, "restore_snapshot") == "skipped"
    snapshot = find_snapshot(stack, snapshot_id)

    feed(2000)  # processed by the stream, then again by the restored one
    wait_caught_up(stack)
    before = stream.control.running()
    assert before is not None
    run_id = airflow.trigger(SNAPSHOT_DAG, {"action": "restore", "snapshot_id": snapshot_id})
    state = airflow.wait(SNAPSHOT_DAG, run_id)
    log = airflow.task_log(SNAPSHOT_DAG, run_id, "restore_snapshot")
    assert state == "success", log + airflow.task_log(SNAPSHOT_DAG, run_id, "check_stream_health")
    assert f"enrichment stream RESTORED from state snapshot {snapshot_id}:" in log
    assert "previous checkpoint kept at" in log
    assert "enrichment stream HEALTHY" in airflow.task_log(SNAPSHOT_DAG, run_id, "check_stream_health")
    after = stream.control.running()
    assert after is not None and after.pid != before.pid and len(copies(stack)) == 1

    wait_caught_up(stack)
    checkpoint = stream.stream.checkpoint(stack)
    first_batch = json.loads((checkpoint / "sources" / "0" / "0").read_text().splitlines()[-1])
    assert first_batch == {"md.events": {str(p): o for p, o in snapshot.offsets.items()}}
    expected, _ = expected_from_input(
        stack, "md.events", start=snapshot.offsets, initial=snapshot_state(stack, snapshot_id)
    )
    restored = committed(checkpoint).states
    assert set(restored) == set(expected)
    for instrument_id, fields in expected.items():
        assert {n: restored[instrument_id].values.get(n) for n in fields} == fields, instrument_id


def test_restoring_a_snapshot_that_does_not_exist_fails_in_one_sentence(airflow: AirflowApi) -> None:
    run_id = airflow.trigger(SNAPSHOT_DAG, {"action": "restore", "snapshot_id": "no-such-snapshot"})
    assert airflow.wait(SNAPSHOT_DAG, run_id) == "failed"
    log = airflow.task_log(SNAPSHOT_DAG, run_id, "restore_snapshot")
    assert "There is no state snapshot 'no-such-snapshot' in ops.state_snapshot_index" in log
    assert airflow.task_state(SNAPSHOT_DAG, run_id, "check_stream_health") == "upstream_failed"


def test_the_replay_check_of_what_the_stream_published_passes_through_the_backfill_dag(
    airflow: AirflowApi, stack: Settings
) -> None:
    """backfill with target=check, triggered as a user does: what the running stream published for a range of
    events equals their recomputation (differences that batch boundaries explain are counted apart)."""
    start = datetime.now(UTC)
    feed(3000)
    end = datetime.now(UTC) + timedelta(seconds=1)
    total, settled, deadline = enriched_total(stack), 0, time.monotonic() + 120
    while settled < 3 and time.monotonic() < deadline:  # the stream published all of it: md.enriched stops growing
        time.sleep(3)
        latest = enriched_total(stack)
        settled, total = (settled + 1 if latest == total else 0), latest
    conf = {"start": start.isoformat(), "end": end.isoformat(), "instruments": [], "target": "check"}
    run_id = airflow.trigger(BACKFILL_DAG, conf)
    try:
        state = airflow.wait(BACKFILL_DAG, run_id, timeout_s=900)
    finally:
        airflow.set_paused(BACKFILL_DAG, True)
    log = airflow.task_log(BACKFILL_DAG, run_id, "backfill_events")
    assert state == "success", log
    assert "0 different, 0 missing in live, 0 missing in replay" in log, log


def test_stop_stops_it_and_it_stays_stopped(airflow: AirflowApi, stack: Settings) -> None:
    run_id, state = run(airflow, "stop")
    assert state == "success", airflow.task_log(DAG, run_id, "manage_stream")
    assert copies(stack) == set()
    assert EnrichmentStream(stack).health().verdict is Verdict.STOPPED
    assert "enrichment stream STOPPED" in airflow.task_log(DAG, run_id, "check_stream_health")
