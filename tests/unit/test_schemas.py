"""Schema files: valid, documented, named after their record, and BACKWARD compatible with the release."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from tickflow.schemas import RECORD_SCHEMAS, TOPIC_SCHEMAS, SchemaError, load, subjects

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"
RELEASED = ROOT / "tests" / "fixtures" / "schemas" / "released"


def test_every_schema_loads_and_every_field_is_documented() -> None:
    files = sorted(SCHEMAS.glob("*.avsc"))
    assert {f.stem for f in files} == set(TOPIC_SCHEMAS.values()) | set(RECORD_SCHEMAS)
    for path in files:
        schema = load(path.stem, SCHEMAS)
        assert schema.definition.get("doc"), path
        for field in schema.definition["fields"]:
            assert field.get("doc"), f"{path.name}: field {field['name']} has no doc"


def test_subjects_follow_topic_name_strategy() -> None:
    table = subjects(SCHEMAS)
    assert table["md.events-value"].full_name == "tickflow.md.MarketEvent"
    assert table["md.enriched-value"].full_name == "tickflow.md.EnrichedEvent"


def test_time_is_timestamp_micros_and_source_fields_are_optional() -> None:
    fields = {f["name"]: f for f in load("tickflow.md.MarketEvent", SCHEMAS).definition["fields"]}
    assert fields["event_time"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    for name in ("bid_price", "ask_size", "last_price", "trade_id", "trade_side"):
        assert fields[name]["type"][0] == "null" and fields[name]["default"] is None


WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize("released", sorted(RELEASED.glob("*.avsc")), ids=lambda p: p.stem)
def test_current_schema_reads_what_the_released_one_wrote(released: Path) -> None:
    """BACKWARD, checked locally by Avro schema resolution on a record of the released schema."""
    writer = fastavro.parse_schema(json.loads(released.read_text()))
    reader = load(released.stem, SCHEMAS).parsed
    record = {}
    for field in json.loads(released.read_text())["fields"]:
        kind = field["type"]
        if isinstance(kind, list) or "default" in field:
            record[field["name"]] = field.get("default")
        elif isinstance(kind, dict) and kind.get("type") == "enum":
            record[field["name"]] = kind["symbols"][0]
        else:
            base = kind["type"] if isinstance(kind, dict) else kind
            if isinstance(kind, dict) and kind.get("logicalType") == "timestamp-micros":
                base = "timestamp"
            record[field["name"]] = {
                "string": "x",
                "long": 1,
                "int": 1,
                "double": 1.5,
                "boolean": True,
                "timestamp": WHEN,
            }[base]
    out = io.BytesIO()
    fastavro.schemaless_writer(out, writer, record)
    out.seek(0)
    decoded = fastavro.schemaless_reader(out, writer, reader)
    assert out.read() == b"", "the reader left bytes of the record unread"
    current = {f["name"]: f for f in reader["fields"]}
    assert {name: decoded[name] for name in record} == record  # what was written reads back unchanged
    added = set(current) - set(record)
    assert {name: decoded[name] for name in added} == {name: current[name]["default"] for name in added}


def test_a_misnamed_schema_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tickflow.md.Wrong.avsc").write_text((SCHEMAS / "tickflow.ref.FxRate.avsc").read_text())
    with pytest.raises(SchemaError, match=r"name the file tickflow\.ref\.FxRate\.avsc"):
        load("tickflow.md.Wrong", tmp_path)
