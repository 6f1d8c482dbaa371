"""Running the serving app: in the foreground (``tickflow serve``), or in a thread of this process on a
given port (the browser test and the benchmark, which write to HBase while the page watches)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tickflow.errors import TickflowError
from tickflow.retry import wait_for
from tickflow.runtime.scrape import register_target, unregister_target
from tickflow.settings import Settings


@contextmanager
def announced(settings: Settings, host: str, port: int) -> Iterator[None]:
    """Prometheus scrapes the app's /metrics on host:port while the block runs (a file-based target)."""
    target = register_target(settings, "serving", f"{host}:{port}")
    try:
        yield
    finally:
        unregister_target(target)


@contextmanager
def running(app: FastAPI, host: str, port: int, timeout_s: float = 60.0) -> Iterator[str]:
    """The app served on host:port until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"tickflow-serve-{port}", daemon=True)
    thread.start()
    not_started = TickflowError(f"The serving app did not start on {host}:{port}: is the port taken?")

    def started() -> bool:
        if not thread.is_alive():
            raise not_started
        return bool(server.started)

    wait_for(started, timeout_s, interval_s=0.02, timed_out=lambda _: not_started)
    try:
        with announced(Settings(), host, port):
            yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
