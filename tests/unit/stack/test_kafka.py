"""The secured broker's config: credentials salted before they reach a command line, and ACLs that grant
each component its own work only."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation

from tickflow.kafka_auth import Principal, credential_file
from tickflow.settings import Settings
from tickflow.stack.base import StackError
from tickflow.stack.kafka import Kafka, salted_scram
from tickflow.stack.kafka_acls import grants
from tickflow.stack.registry import Registry


def test_the_admin_credential_is_salted_so_the_password_is_on_no_command_line() -> None:
    credential = salted_scram("s3cret", iterations=4096)
    assert "s3cret" not in credential
    match = re.fullmatch(
        r'SCRAM-SHA-512=\[name=admin,iterations=4096,salt="([^"]+)",saltedpassword="([^"]+)"\]', credential
    )
    assert match
    salt = base64.b64decode(match[1])
    assert base64.b64decode(match[2]) == hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 4096)


def test_a_storage_formatted_before_secured_mode_is_refused_in_one_sentence(tmp_path: Path) -> None:
    kafka = Kafka(Settings(state_dir=tmp_path, secured=True))
    (kafka.home / "data").mkdir(parents=True)
    (kafka.home / "data" / "meta.properties").write_text("")
    with pytest.raises(StackError, match="formatted before secured mode was turned on"):
        kafka.write_config()


def test_airflow_may_only_read_and_no_grant_names_admin() -> None:
    writes = {AclOperation.WRITE, AclOperation.CREATE, AclOperation.ALTER, AclOperation.DELETE}
    assert not [g for g in grants() if g.principal is Principal.AIRFLOW and writes & set(g.operations)]
    assert Principal.ADMIN not in {grant.principal for grant in grants()}
    simulator = {(g.name, op) for g in grants() if g.principal is Principal.SIMULATOR for op in g.operations}
    assert ("md.events", AclOperation.WRITE) in simulator and ("md.enriched", AclOperation.WRITE) not in simulator


def test_the_registry_logs_in_as_registry_from_a_private_file_and_not_from_its_command_line(tmp_path: Path) -> None:
    registry = Registry(Settings(state_dir=tmp_path, secured=True))
    registry.write_config()
    config = registry.home / "config" / "application.properties"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    lines = config.read_text().splitlines()
    for client in ("producer", "consumer", "admin"):
        assert f"apicurio.kafkasql.{client}.security.protocol=SASL_PLAINTEXT" in lines
        assert any(line.startswith(f"apicurio.kafkasql.{client}.sasl.jaas.config=") for line in lines)
    password = credential_file(registry.settings, Principal.REGISTRY).read_text()
    assert f'username="registry" password="{password}"' in config.read_text()


def test_connect_may_run_exactly_once_sources_and_the_backfill_only_reads_md_events() -> None:
    def allowed(principal: Principal) -> set[tuple[str, AclOperation]]:
        return {(g.name, op) for g in grants() if g.principal is principal for op in g.operations}

    connect = allowed(Principal.CONNECT)
    # The leader's transactional id (connect-cluster-<group.id>) and the tasks' (<group.id>-<connector>-<task>).
    assert ("connect-cluster-tickflow-connect", AclOperation.WRITE) in connect
    assert ("tickflow-connect", AclOperation.WRITE) in connect
    backfill = allowed(Principal.BACKFILL)
    assert ("md.events", AclOperation.READ) in backfill
    assert not {op for _, op in backfill} & {AclOperation.WRITE, AclOperation.CREATE}


def test_outside_secured_mode_formatting_makes_no_admin_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    kafka = Kafka(Settings(state_dir=tmp_path, secured=False))
    kafka.home.mkdir(parents=True)
    monkeypatch.setattr(Kafka, "java_command", lambda self: ["java"])
    kafka.write_config()
    assert commands and "--add-scram" not in commands[0]
    assert not credential_file(kafka.settings, Principal.ADMIN).exists()
