"""The stack's Prometheus config: every component is a target, on its own host in the cluster profile, and promtool
accepts the file with tickflow's rules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tickflow.settings import Settings
from tickflow.stack.prometheus import scrape_config


def targets(config: dict[str, object]) -> dict[str, list[str]]:
    jobs = config["scrape_configs"]
    assert isinstance(jobs, list)
    return {job["job_name"]: [t for c in job.get("static_configs", []) for t in c["targets"]] for job in jobs}


def test_every_component_is_scraped_on_loopback(tmp_path: Path) -> None:
    local = targets(scrape_config(Settings(), tmp_path))
    assert local == {
        "prometheus": ["127.0.0.1:9091"],
        "kafka": ["127.0.0.1:9404"],
        "connect": ["127.0.0.1:9405"],
        "hbase": ["127.0.0.1:16010"],
        "postgres": ["127.0.0.1:9187"],
        "tickflow-exporter": ["127.0.0.1:9410"],
        "serving": [],  # the apps announce themselves (file-based targets)
        "stream": [],
    }
    cluster = targets(scrape_config(Settings(profile="cluster"), tmp_path))
    assert cluster["kafka"] == ["127.0.0.2:9404", "127.0.0.3:9404", "127.0.0.4:9404"]
    assert cluster["connect"] == ["127.0.0.3:9405", "127.0.0.4:9405"]


def test_promtool_accepts_the_config_and_its_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: install Debian's prometheus package (promtool), as .ci/run does.")
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(scrape_config(Settings(), tmp_path / "targets")))
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "19 rules found" in check.stdout + check.stderr


def test_in_secured_mode_every_endpoint_takes_the_metrics_login(tmp_path: Path) -> None:
    settings = Settings(secured=True, state_dir=tmp_path)
    config = scrape_config(settings, tmp_path / "targets")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    password_file = str(tmp_path / "prometheus" / "credentials" / "prometheus")
    for name in ("prometheus", "kafka", "connect", "hbase", "postgres", "tickflow-exporter", "stream"):
        assert jobs[name]["basic_auth"] == {"username": "prometheus", "password_file": password_file}, name
    # the serving API takes its own token, as its page does
    assert jobs["serving"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": str(tmp_path / "serving" / "token"),
    }
    assert "basic_auth" not in jobs["serving"]


def test_the_secured_web_config_and_the_agents_login_check_the_generated_password(tmp_path: Path) -> None:
    import bcrypt

    from tickflow.runtime.scrape import metrics_login
    from tickflow.stack.jvm import jmx_login
    from tickflow.stack.prometheus import web_config

    settings = Settings(secured=True, state_dir=tmp_path)
    login = metrics_login(settings)
    assert (
        login is not None and oct((tmp_path / "prometheus" / "credentials" / "prometheus").stat().st_mode)[-3:] == "600"
    )
    user, password = login
    hashed = json.loads(web_config(settings))["basic_auth_users"][user]
    assert bcrypt.checkpw(password.encode(), hashed.encode())
    promtool = shutil.which("promtool")
    assert promtool is not None
    path = tmp_path / "web.yml"
    path.write_text(web_config(settings))
    check = subprocess.run([promtool, "check", "web-config", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    block = dict(line.strip().split(": ", 1) for line in jmx_login(settings).splitlines() if ": " in line)
    assert block["username"] == user and block["algorithm"] == "SHA-256"
    import hashlib

    assert block["passwordHash"] == hashlib.sha256(f"{block['salt']}:{password}".encode()).hexdigest()
    assert jmx_login(Settings(state_dir=tmp_path)) == ""  # plain mode: no login
