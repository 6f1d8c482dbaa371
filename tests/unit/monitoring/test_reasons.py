"""A dead letter's reason sentence -> the code of the rule that wrote it: each sentence the decoders write
(tickflow.stream.decode in Spark SQL, jvm/stream's EventDecoder; the examples are their tests' own), whatever values
are in it, and nothing else."""

from __future__ import annotations

import pytest

from tickflow.monitoring.reasons import OTHER, REASON_CODES, reason_code
from tickflow.stream.decode import MAX_SIZE, NOT_FRAMED, PRICES, SIZES, TEXTS

NOW_US = 1_780_000_000_000_000
SENTENCES = [
    (NOT_FRAMED, "not_framed"),
    ("unknown schema id 77", "unknown_schema_id"),
    ("unknown schema id 4294967295", "unknown_schema_id"),
    ("2 bytes left over after the record (schema id 1)", "trailing_bytes"),
    ("1 bytes left over after the record (schema id 1)", "trailing_bytes"),
    ("undecodable Avro body for schema id 1", "undecodable"),
    *((f"{name} is not valid UTF-8", "invalid_utf8") for name in TEXTS),
    ("missing instrument_id", "missing_instrument_id"),
    ("missing event_id", "missing_event_id"),
    ("message key 'XNAS:MSFT' is not the instrument_id 'XNAS:AAPL'", "key_mismatch"),
    ("message key None is not the instrument_id 'XNAS:AAPL'", "key_mismatch"),
    ("message key '\ufffdXNAS:AAPL' is not the instrument_id 'XNAS:AAPL'", "key_mismatch"),
    ("event_time -1 (\u00b5s since the epoch) is before 1970", "event_time_before_epoch"),
    ("event_time -9223372036854775808 (\u00b5s since the epoch) is before 1970", "event_time_before_epoch"),
    ("event_time 3600s in the future", "event_time_in_future"),
    (f"event_time {(2**63 - 1 - NOW_US) / 1e6:.0f}s in the future", "event_time_in_future"),
    *((f"{name} -3.0 is not positive", "price_not_positive") for name in PRICES),
    ("bid_price -0.0 is not positive", "price_not_positive"),
    ("ask_price 0.0 is not positive", "price_not_positive"),
    ("ask_price -1.0E20 is not positive", "price_not_positive"),
    ("last_price NaN is not positive", "price_not_positive"),
    ("trade_price -Infinity is not positive", "price_not_positive"),
    *((f"{name} Infinity is not finite", "price_not_finite") for name in PRICES),
    *((f"{name} -1 is negative", "size_negative") for name in SIZES),
    ("bid_size -9223372036854775808 is negative", "size_negative"),
    *((f"{name} {MAX_SIZE + 1} is above {MAX_SIZE}, the largest size kept exact", "size_too_large") for name in SIZES),
    ("bid 101.0 above ask 100.5 beyond the 0.00% tolerance", "crossed_quote"),
    ("bid 101.6 above ask 100.5 beyond the 1.00% tolerance", "crossed_quote"),
    ("bid 1.0E20 above ask 1.0E-5 beyond the 12.50% tolerance", "crossed_quote"),
]


@pytest.mark.parametrize(("reason", "code"), SENTENCES)
def test_each_decoder_sentence_gets_the_code_of_its_rule(reason: str, code: str) -> None:
    assert reason_code(reason) == code


def test_every_code_but_other_has_a_sentence() -> None:
    assert {code for _, code in SENTENCES} == set(REASON_CODES) - {OTHER}


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        # values that read like another rule's sentence are still values
        ("message key 'missing event_id' is not the instrument_id 'unknown schema id 5'", "key_mismatch"),
        ("message key 'a\nb' is not the instrument_id 'a\nb c'", "key_mismatch"),
        # a sentence no decoder writes, or a part of one, or none
        ("event_time 12s in the future, roughly", OTHER),
        ("not in the Confluent wire format", OTHER),
        ("the connector could not write it", OTHER),
        ("", OTHER),
        (None, OTHER),
    ],
)
def test_only_whole_sentences_count(reason: str | None, code: str) -> None:
    assert reason_code(reason) == code
