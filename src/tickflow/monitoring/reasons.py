"""A dead letter's reason as a bounded code, for a metric label.

The stream's decoders (``tickflow.stream.decode`` in Spark SQL, ``EventDecoder`` in jvm/stream) write a sentence with
the values in it ("event_time 12s in the future", "unknown schema id 77") into each dead letter's ``reason`` header.
As a label those would make a new series per value; the rule that rejected the record is what a person needs to know
first, so each sentence maps to the code of its rule. The patterns follow the decoders' sentences rule by rule and
match whole sentences, so a value inside one (an instrument id that reads "missing event_id") cannot pass for another
rule.
"""

from __future__ import annotations

import re

OTHER = "other"

# In the decoders' order of rules; each pattern matches the whole reason.
_RULES = (
    ("not_framed", r"not in the Confluent wire format \(no magic byte 0 and schema id\)"),
    ("unknown_schema_id", r"unknown schema id -?\d+"),
    ("trailing_bytes", r"\d+ bytes left over after the record \(schema id -?\d+\)"),
    ("undecodable", r"undecodable Avro body for schema id -?\d+"),
    ("invalid_utf8", r"\w+ is not valid UTF-8"),
    ("missing_instrument_id", r"missing instrument_id"),
    ("missing_event_id", r"missing event_id"),
    ("key_mismatch", r"message key (None|'.*') is not the instrument_id '.*'"),
    ("event_time_before_epoch", r"event_time -\d+ \(.s since the epoch\) is before 1970"),
    ("event_time_in_future", r"event_time \d+s in the future"),
    ("price_not_positive", r"\w+ \S+ is not positive"),
    ("price_not_finite", r"\w+ Infinity is not finite"),
    ("size_negative", r"\w+ -\d+ is negative"),
    ("size_too_large", r"\w+ \d+ is above \d+, the largest size kept exact"),
    ("crossed_quote", r"bid \S+ above ask \S+ beyond the \S+% tolerance"),
)
_PATTERNS = tuple((code, re.compile(pattern, re.DOTALL)) for code, pattern in _RULES)

REASON_CODES = (*(code for code, _ in _RULES), OTHER)


def reason_code(reason: str | None) -> str:
    """The code of the rule that wrote ``reason``; ``other`` for a sentence no decoder writes (or none at all)."""
    if reason is not None:
        for code, pattern in _PATTERNS:
            if pattern.fullmatch(reason):
                return code
    return OTHER
