"""Secured mode: the API and the page answer only with the serving token (a header, or the cookie the login
link sets); off, nothing changes. The app runs on a store that needs no HBase."""

from __future__ import annotations

import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tickflow.hbase.store import Latest, MarketDataStore
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url, serving_token, token_file
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

TOKEN = "a-token-long-enough-for-tests"
API = ("/api/instruments?q=", "/api/latest?ids=TEST:A", "/api/history/TEST:A", "/api/docs", "/openapi.json")


class NoHBase(MarketDataStore):
    """A store with nothing in md:latest and md:history, and nothing to connect to."""

    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        return {}

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {"TEST:A": {"symbol": "AAA"}}

    def history(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def ping(self) -> None:
        pass


def client(settings: Settings, serving: ServingSettings | None = None) -> Iterator[TestClient]:
    serving = serving or ServingSettings(reference_from_hive=False)
    with TestClient(create_app(settings, serving, store=NoHBase(settings))) as test_client:
        yield test_client


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    serving = ServingSettings(reference_from_hive=False, token=TOKEN)
    yield from client(Settings(state_dir=tmp_path, secured=True), serving)


def test_unsecured_the_api_and_the_page_answer_everyone(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=False)
    for test_client in client(settings):
        assert test_client.get("/").status_code == 200
        assert test_client.get("/api/instruments?q=AAA").json()["instruments"][0]["instrument_id"] == "TEST:A"
        assert test_client.get("/api/latest?ids=TEST:A").status_code == 200
    assert not token_file(settings).exists()  # no token is made when none is needed


@pytest.mark.parametrize("path", API)
def test_without_the_token_the_api_says_in_one_sentence_how_to_get_in(secured: TestClient, path: str) -> None:
    response = secured.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": "This server is in secured mode: send the token (TICKFLOW_SERVING_TOKEN on the server) as the "
        "header `Authorization: Bearer <token>`, or open the link `tickflow serve` printed."
    }


def test_without_the_token_the_page_is_a_login_form(secured: TestClient) -> None:
    response = secured.get("/")
    assert response.status_code == 401
    assert "This server is in secured mode" in response.text
    assert '<form method="post" action="/login">' in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-token-at-all"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Cookie": "tickflow-serving-80=not-the-token-at-all"},
    ],
)
def test_a_wrong_token_is_refused(secured: TestClient, headers: dict[str, str]) -> None:
    response = secured.get("/api/instruments", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"].startswith(("That is not this server's token", "This server is in secured"))


def test_the_bearer_token_opens_the_api_and_the_page(secured: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in API:
        assert secured.get(path, headers=bearer).status_code == 200, path
    assert secured.get("/", headers=bearer).status_code == 200


def test_open_without_the_token_health_and_the_page_assets(secured: TestClient) -> None:
    assert secured.get("/healthz").json()["status"] == "ok"
    assert secured.get("/static/app.js").status_code == 200


def test_the_login_link_sets_a_strict_http_only_cookie_and_leaves_the_address_bar(secured: TestClient) -> None:
    response = secured.get(login_url("http://testserver", TOKEN), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"tickflow-serving-80={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = secured.get("/")  # the cookie, as the browser sends it after the redirect
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert secured.get("/api/instruments?q=AAA").json()["instruments"][0]["instrument_id"] == "TEST:A"
    with secured.stream("GET", "/api/stream?ids=TEST:A") as feed:
        assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/event-stream")


def test_the_login_form_sets_the_cookie_and_a_wrong_token_shows_the_form_again(secured: TestClient) -> None:
    wrong = secured.post("/login", data={"token": "guess-guess-guess-guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "That is not this server&#x27;s token" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert secured.get(login_url("http://testserver", "guess-guess-guess")).status_code == 401
    right = secured.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    assert secured.get("/api/instruments").status_code == 200


def test_the_token_is_generated_once_into_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=True)
    serving = ServingSettings(reference_from_hive=False, token=None)
    for test_client in client(settings, serving):
        path = token_file(settings)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text()
        assert len(token) >= 40
        assert test_client.get("/api/instruments", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        detail = test_client.get("/api/instruments").json()["error"]
        assert f"send the token ({path} on the server)" in detail
    assert serving_token(settings, serving) == token  # a restart keeps it
    assert list(path.parent.iterdir()) == [path]  # nothing left beside it


@pytest.mark.parametrize("token", ["short", "has spaces in the middle", "semicolon;semicolon;semicolon"])
def test_a_token_from_the_environment_must_be_long_and_plain(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    from pydantic import ValidationError

    from tickflow.settings import explain_invalid

    monkeypatch.setenv("TICKFLOW_SERVING_TOKEN", token)
    with pytest.raises(ValidationError) as error:
        ServingSettings()
    sentence = explain_invalid(error.value)
    assert sentence is not None and sentence.startswith("TICKFLOW_SERVING_TOKEN is not valid (a token is at least 16")
    assert token not in sentence  # a secret is never echoed


def test_serve_prints_the_login_link_in_secured_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from tickflow.cli import app

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **_: served.append(application))
    for name, value in {"TICKFLOW_STATE_DIR": str(tmp_path), "TICKFLOW_SECURED": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TICKFLOW_SERVING_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--port", "1"])  # nothing listens there; nothing is bound
    assert result.exit_code == 0, result.output
    token = token_file(Settings(state_dir=tmp_path)).read_text()
    assert f"serving the live page at http://127.0.0.1:1/?token={token} " in result.output
    assert len(served) == 1


def test_the_access_log_hides_the_login_links_token() -> None:
    import logging

    from tickflow.serving.auth import HideTokens

    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s %s" %d', ("1.2.3.4", "GET", f"/?token={TOKEN}&x=1", 303), None
    )
    HideTokens().filter(record)
    assert record.getMessage() == '1.2.3.4 - "GET /?token=<hidden>&x=1" 303'
