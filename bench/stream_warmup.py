"""The live stream's cost as its JVM warms up: a freshly started stream (`tickflow stream start`), RATE events/s
offered by the simulator for MINUTES, and per minute the stream JVM's cores (/proc), the JIT's compile time
(`jstat -compiler`, seconds of compiler-thread time, which can exceed the minute), the micro-batches run and the
median and worst age of its output (progress.json, sampled every 2 s), and where the JVM's cores went by thread
(/proc/<pid>/task/*/stat, threads grouped by name: THREAD_GROUPS).

Spark's per-batch driver code (analysis, planning, closure cleaning, task serialisation) runs a few times a
second, so the JIT compiles it for minutes: a figure taken a minute after start is not the stream's steady
state (docs/performance.md).

    .venv/bin/python -m bench.stream_warmup [--rate 5000] [--minutes 10]

Needs the stack up with topics, schemas and reference data. Restarts the stream if it runs (the figures start
from a cold JVM) and stops it at the end. One line per minute on stdout, then all of them as JSON; progress on
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.pipeline_bench import CpuMeter, cli, note, wait_healthy
from bench.stream_bench import simulator
from tickflow.settings import Settings
from tickflow.stream.control import EnrichmentStream
from tickflow.stream.settings import StreamSettings

# Linux thread names (15 characters of the Java thread's name) -> the group they count in; the rest is "other".
THREAD_GROUPS = (
    ("Executor task l", "tasks"),  # rarely alive at both looks: see thread_cores
    ("stream executio", "driver stream thread"),
    ("GC Thread", "GC"),
    ("G1 ", "GC"),
    ("C2 CompilerThre", "JIT"),
    ("C1 CompilerThre", "JIT"),
    ("broadcast-excha", "broadcast + scheduler"),
    ("dag-scheduler-e", "broadcast + scheduler"),
)


def thread_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Each live thread of the JVM: its group (THREAD_GROUPS, from its name) and CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        group = next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")
        threads[int(task.name)] = (group, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return threads


def thread_cores(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float, jvm_cores: float
) -> dict[str, float]:
    """Cores per thread group between two ``thread_seconds``. Spark runs each task on a thread that is gone by the
    next look, so what the JVM used beyond its live threads is "ended threads (tasks)"."""
    cores: dict[str, float] = {}
    for tid, (group, used) in after.items():
        cores[group] = cores.get(group, 0.0) + (used - before.get(tid, (group, 0.0))[1]) / seconds
    cores["ended threads (tasks)"] = cores.pop("tasks", 0.0) + jvm_cores - sum(cores.values())
    return {group: round(value, 3) for group, value in sorted(cores.items())}


def compile_seconds(jstat: str, pid: int) -> float:
    """Total JIT compile time of the JVM so far (jstat -compiler's Time column)."""
    out = subprocess.run([jstat, "-compiler", str(pid)], capture_output=True, text=True, check=True).stdout
    header, values = out.splitlines()[:2]
    return float(values.split()[header.split().index("Time")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    settings = Settings()
    stream = EnrichmentStream(settings)
    jstat = shutil.which("jstat")
    if jstat is None:
        parser.error("jstat (a JDK's) is needed on PATH to read the JIT's compile time")
    note("restarting the enrichment stream (a cold JVM)")
    subprocess.run(cli("stream", "stop"), check=False, stdout=subprocess.DEVNULL)
    subprocess.run(cli("stream", "start"), check=True, stdout=subprocess.DEVNULL)
    minutes = []
    try:
        wait_healthy(settings, stream)
        meter = CpuMeter(settings, serving_pid=0)
        if meter.stream_jvm is None:
            raise RuntimeError(f"the stream's JVM was not found (log: {stream.log_path})")
        jvm = meter.stream_jvm.pid
        progress_path: Path = stream.progress_path
        note(f"offering {args.rate:,}/s for {args.minutes} min")
        with simulator(StreamSettings().input_topic, args.rate, args.minutes * 60 + 5):
            for minute in range(1, args.minutes + 1):
                before, compiled = meter.read().seconds, compile_seconds(jstat, jvm)
                threads = thread_seconds(jvm)
                first = json.loads(progress_path.read_text())["batch_id"]
                ages = []
                end = time.monotonic() + 60
                while time.monotonic() < end:
                    age = json.loads(progress_path.read_text()).get("output_age_s")
                    if age is not None:
                        ages.append(age)
                    time.sleep(2)
                after = meter.read().seconds
                threads_after = thread_seconds(jvm)
                row = {
                    "minute": minute,
                    "stream_cores": round((after["stream JVM"] - before["stream JVM"]) / 60, 3),
                    "jit_compile_s": round(compile_seconds(jstat, jvm) - compiled, 1),
                    "machine_cores": round((after["machine"] - before["machine"]) / 60, 3),
                    "batches": json.loads(progress_path.read_text())["batch_id"] - first,
                    "output_age_p50_s": round(statistics.median(ages), 2) if ages else None,
                    "output_age_max_s": round(max(ages), 2) if ages else None,
                    "thread_cores": thread_cores(
                        threads, threads_after, 60, (after["stream JVM"] - before["stream JVM"]) / 60
                    ),
                }
                minutes.append(row)
                print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    finally:
        note("stopping the enrichment stream")
        subprocess.run(cli("stream", "stop"), check=False, stdout=subprocess.DEVNULL)
    print(json.dumps({"rate": args.rate, "minutes": minutes}))


if __name__ == "__main__":
    sys.exit(main())
