"""``tickflow serve``: the API and the live web page."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape

from tickflow.cli.errors import fail
from tickflow.cli.output import console
from tickflow.processes import port_in_use
from tickflow.settings import Settings


def serve(
    port: Annotated[int | None, typer.Option(help="Default: TICKFLOW_PORT_SERVING (8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Default: TICKFLOW_HOST (loopback).")] = None,
) -> None:
    """Serve the API and the live web page (instruments by selection, read from HBase) until Ctrl-C."""
    import uvicorn

    from tickflow.serving.app import create_app
    from tickflow.serving.auth import HideTokens, login_url, serving_token
    from tickflow.serving.server import announced
    from tickflow.serving.settings import ServingSettings

    settings, serving = Settings(), ServingSettings()
    host, port = host or settings.host, port or settings.ports.serving
    if port_in_use(host, port):
        fail(f"port {port} on {host} is taken: stop what listens there or pass --port.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("happybase").setLevel(logging.WARNING)  # a line per reconnect while HBase is down
    application = create_app(settings, serving)  # its settings are checked before the announcement
    url = f"http://{host}:{port}/"
    if settings.secured:  # the link logs a browser in, as Jupyter's does; programs send the token as a header
        url = login_url(url, serving_token(settings, serving))
        logging.getLogger("uvicorn.access").addFilter(HideTokens())
        console.print("secured mode: the API and the page ask for the token (Authorization: Bearer <token>)")
    console.print(f"serving the live page at {escape(url)} (API docs at /api/docs); Ctrl-C stops it")
    with announced(settings, host, port):
        uvicorn.run(application, host=host, port=port, log_level="info")
