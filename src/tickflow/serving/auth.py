"""Secured mode (``TICKFLOW_SECURED``): the API and the page answer only whoever shows the serving token.

Programs send it as ``Authorization: Bearer <token>``. A person opens the link ``tickflow serve`` prints
(``/?token=...``, as Jupyter does) or types the token into the page's login form: either sets an HttpOnly,
SameSite=Strict cookie and redirects to ``/``, so the token leaves the address bar and the page's own
requests (same-origin fetch and EventSource send cookies) carry the cookie. ``/healthz`` stays open for
monitors, and so does ``/static/`` (the page's code and styles: no data).
"""

from __future__ import annotations

import html
import logging
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tickflow.runtime.paths import StatePaths
from tickflow.secret_file import generated_secret
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

OPEN_PATHS = ("/healthz", "/static/")  # exact path, or a prefix when it ends with /
LOGIN_PATH = "/login"
MAX_LOGIN_BODY = 4096


def token_file(settings: Settings) -> Path:
    return StatePaths(settings.root).serving_token


def serving_token(settings: Settings, serving: ServingSettings) -> str:
    """TICKFLOW_SERVING_TOKEN, else the token generated into the state directory at first need (mode 0600)."""
    if serving.token is not None:
        return serving.token.get_secret_value()
    return generated_secret(token_file(settings))


def login_url(base_url: str, token: str) -> str:
    """The link that logs a browser in: what ``tickflow serve`` prints."""
    return f"{base_url.rstrip('/')}/?token={quote(token, safe='')}"


def where_the_token_is(settings: Settings, serving: ServingSettings) -> str:
    if serving.token is not None:
        return "TICKFLOW_SERVING_TOKEN on the server"
    return f"{token_file(settings)} on the server"


class HideTokens(logging.Filter):
    """Keeps the login link's token out of the access log (uvicorn logs every request's query string)."""

    TOKEN_PARAMETER = re.compile(r"([?&]token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.TOKEN_PARAMETER.sub(r"\1<hidden>", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _is_open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


class TokenGate:
    """ASGI middleware in front of the whole app (routes, mounts, /api/docs): a request without the token
    gets 401, in one sentence saying how to get in; the page gets a login form instead of JSON."""

    def __init__(self, app: ASGIApp, token: str, where: str) -> None:
        self.app = app
        self.token = token.encode()
        self.where = where

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._refusal(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _refusal(self, request: Request) -> Response | None:
        """None when the request may pass; else the answer: a login that sets the cookie, or a 401."""
        path, method = request.url.path, request.method
        if path == "/" and method == "GET" and "token" in request.query_params:
            return self._login(request, request.query_params["token"])
        if path == LOGIN_PATH and method == "POST":
            body = (await request.body())[:MAX_LOGIN_BODY].decode("utf-8", "replace")
            return self._login(request, parse_qs(body).get("token", [""])[0])
        sent = self._bearer(request)
        if sent is None:
            sent = request.cookies.get(self._cookie(request))
        if sent is not None and self._valid(sent):
            return None
        sentence = self._sentence(wrong=sent is not None)
        if path == "/":
            return self._login_page(sentence)
        return JSONResponse({"error": sentence}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def _login(self, request: Request, sent: str) -> Response:
        if not self._valid(sent):
            return self._login_page(self._sentence(wrong=True))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(self._cookie(request), sent, httponly=True, samesite="strict", path="/")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def _valid(self, sent: str) -> bool:
        return secrets.compare_digest(sent.encode(), self.token)

    def _sentence(self, *, wrong: bool) -> str:
        lead = "That is not this server's token" if wrong else "This server is in secured mode"
        return (
            f"{lead}: send the token ({self.where}) as the header `Authorization: Bearer <token>`, "
            "or open the link `tickflow serve` printed."
        )

    @staticmethod
    def _bearer(request: Request) -> str | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None

    @staticmethod
    def _cookie(request: Request) -> str:
        """One cookie per port: browsers share cookies between the ports of a host (two servers, two tokens)."""
        server = request.scope.get("server")
        return f"tickflow-serving-{server[1]}" if server else "tickflow-serving"

    @staticmethod
    def _login_page(sentence: str) -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE.format(sentence=html.escape(sentence)), status_code=401)


LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>tickflow · token needed</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <main class="login">
    <h1>tickflow <span>live instruments</span></h1>
    <p id="problem" class="problem" role="alert">{sentence}</p>
    <form method="post" action="/login">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
      <button type="submit">Open the page</button>
    </form>
  </main>
</body>
</html>
"""
