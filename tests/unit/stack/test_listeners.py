"""Reading listening sockets out of /proc/net/tcp(6), and the sentence `stack status` says about them."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from tickflow.cli.stack import exposure_sentence
from tickflow.stack import listeners
from tickflow.stack.listeners import Listener, beyond_loopback, parse_proc_net_tcp
from tickflow.stack.supervisor import ServiceStatus, State


def row(slot: int, local: str, remote: str, state: str, inode: int) -> str:
    """One line of the table as the kernel prints it (the fields after the inode are not read)."""
    queues_and_timers = "00000000:00000000 00:00000000 00000000     0        0"
    return f"{slot:>4}: {local} {remote} {state} {queues_and_timers} {inode} 1 0000000049a1e0c2 100 0 0 10 0"


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
NOWHERE4, NOWHERE6 = "00000000:0000", "0" * 32 + ":0000"
# As a little-endian kernel prints them: the metastore on every interface (0.0.0.0:9083), ZooKeeper on
# 127.0.0.1:2181, one on 10.1.2.3:16010, and an established connection (state 01) that must be skipped.
TCP = "\n".join(
    [
        HEADER,
        row(0, "00000000:237B", NOWHERE4, "0A", 15062201),
        row(1, "0100007F:0885", NOWHERE4, "0A", 14861733),
        row(2, "0302010A:3E8A", NOWHERE4, "0A", 14861740),
        row(3, "0100007F:0885", "0100007F:C4D2", "01", 14873001),
    ]
)
# HiveServer2 on the IPv4-mapped 127.0.0.1 (a JVM without preferIPv4Stack), ::1:8080 and [::]:4040.
TCP6 = "\n".join(
    [
        HEADER,  # tcp6's has wider columns; the header line is skipped either way
        row(0, "0000000000000000FFFF00000100007F:2710", NOWHERE6, "0A", 15067629),
        row(1, "00000000000000000000000001000000:1F90", NOWHERE6, "0A", 15067630),
        row(2, "00000000000000000000000000000000:0FC8", NOWHERE6, "0A", 15067631),
    ]
)


def listener(address: str, port: int) -> Listener:
    return Listener(ip_address(address), port)


def test_ipv4_listeners_by_inode_and_connections_skipped() -> None:
    assert parse_proc_net_tcp(TCP) == {
        15062201: listener("0.0.0.0", 9083),
        14861733: listener("127.0.0.1", 2181),
        14861740: listener("10.1.2.3", 16010),
    }


def test_ipv6_listeners() -> None:
    assert parse_proc_net_tcp(TCP6) == {
        15067629: listener("::ffff:127.0.0.1", 10000),
        15067630: listener("::1", 8080),
        15067631: listener("::", 4040),
    }


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),  # all of 127.0.0.0/8
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("::ffff:10.1.2.3", False),
    ],
)
def test_loopback(address: str, loopback: bool) -> None:
    assert listener(address, 1).loopback is loopback


def test_beyond_loopback_keeps_the_reachable_ones_and_prints_them_as_ss_does() -> None:
    found = list(parse_proc_net_tcp(TCP).values()) + list(parse_proc_net_tcp(TCP6).values())
    assert [str(item) for item in beyond_loopback(found)] == ["0.0.0.0:9083", "10.1.2.3:16010", "[::]:4040"]


def test_no_table_lines_no_listeners() -> None:
    assert parse_proc_net_tcp(TCP.splitlines()[0]) == {}


def status(name: str, *exposed: Listener) -> ServiceStatus:
    return ServiceStatus(name, State.HEALTHY, "-", 1, 1.0, Path(f"/state/logs/{name}.log"), exposed)


def test_status_says_nothing_when_everything_is_on_loopback() -> None:
    assert exposure_sentence([status("kafka"), status("hbase")]) is None


def test_status_names_the_service_and_its_address_in_one_sentence() -> None:
    sentence = exposure_sentence([status("kafka"), status("metastore", listener("0.0.0.0", 9083))])
    assert sentence is not None and sentence.startswith("metastore (0.0.0.0:9083) listens beyond loopback,")
    assert sentence.endswith(".") and "\n" not in sentence


def test_status_names_every_service_listening_beyond_loopback() -> None:
    sentence = exposure_sentence(
        [
            status("metastore", listener("0.0.0.0", 9083)),
            status("hbase", listener("0.0.0.0", 16010), listener("::", 16030)),
        ]
    )
    assert sentence is not None
    assert sentence.startswith("metastore (0.0.0.0:9083) and hbase (0.0.0.0:16010, [::]:16030) listen beyond loopback")


def test_a_process_holding_ipv4_and_ipv6_sockets_is_listed_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JVM without preferIPv4Stack binds ``::ffff:127.0.0.1`` beside another process's 127.0.0.1."""
    found = {1: Listener(ip_address("::ffff:127.0.0.1"), 10000), 2: Listener(ip_address("127.0.0.1"), 4040)}
    monkeypatch.setattr(listeners, "listening_sockets", lambda: found)
    monkeypatch.setattr(listeners, "session_members", lambda sid: [sid])
    monkeypatch.setattr(listeners, "socket_inodes", lambda pid: {1, 2})
    assert listeners.session_listeners(7) == [found[2], found[1]]
