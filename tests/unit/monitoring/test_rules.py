"""Prometheus's rules (monitoring/rules/) are valid and do what their tests (monitoring/tests/) say: every alert
fires on one input and stays quiet on another, and the health strip's query gives each figure."""

from __future__ import annotations

import subprocess

from tickflow.settings import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"


def promtool_run(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rule_files_are_valid(promtool: str) -> None:
    rule_files = sorted(str(path.relative_to(MONITORING)) for path in (MONITORING / "rules").glob("*.yml"))
    assert rule_files
    promtool_run(promtool, "check", "rules", *rule_files)


def test_the_rules_pass_their_tests(promtool: str) -> None:
    tests = sorted(str(path.relative_to(MONITORING)) for path in (MONITORING / "tests").glob("*.test.yml"))
    assert "tests/tickflow.rules.test.yml" in tests and "tests/health_strip.test.yml" in tests
    promtool_run(promtool, "test", "rules", *tests)


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    """An alert without both in monitoring/tests/ would be checked for its syntax alone, or could fire always."""
    import yaml

    rules = yaml.safe_load((MONITORING / "rules" / "tickflow.rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    checks = [
        (check["alertname"], bool(check.get("exp_alerts")))
        for path in (MONITORING / "tests").glob("*.test.yml")
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
    ]
    assert {alert for alert, fires in checks if fires} == alerts
    assert {alert for alert, fires in checks if not fires} == alerts
