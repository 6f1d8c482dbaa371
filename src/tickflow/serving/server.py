"""Running the serving app: in the foreground (``tickflow serve``), or in a thread of this process on a
given port (the browser test and the benchmark, which write to HBase while the page watches)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tickflow.errors import TickflowError


@contextmanager
def running(app: FastAPI, host: str, port: int, timeout_s: float = 60.0) -> Iterator[str]:
    """The app served on host:port until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"tickflow-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise TickflowError(f"The serving app did not start on {host}:{port}: is the port taken?")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
