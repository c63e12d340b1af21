"""Request parsing (api/http/records.py): the plain-record fast path stores exactly what the
general path stores, key bytes are Kafka's, and nothing stored is JSON that orjson (a
consumer) cannot read back."""

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.http.records import parse_produce
from raftka.metadata.errors import InvalidRequest
from raftka.storage.batch import JsonRecords, build_fragments, encode_batch

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


def body_of(*records: dict[str, Any]) -> bytes:
    return orjson.dumps({"records": list(records)})


plain_keys = st.none() | json_values | st.text(st.characters(max_codepoint=0x7F))


@given(
    records=st.lists(
        st.tuples(plain_keys, json_values | st.text(st.characters(max_codepoint=0x7F))),
        min_size=1,
        max_size=4,
    ),
    with_keys=st.booleans(),
)
def test_plain_records_are_stored_as_the_general_path_stores_them(
    records: list[tuple[Any, Any]], with_keys: bool
) -> None:
    """Whichever decoder takes the body (strings only, raw texts, or mixed null and string
    keys), the stored batch is the general path's, byte for byte."""
    plain = [{"key": k, "value": v} if with_keys else {"value": v} for k, v in records]
    fast = parse_produce(body_of(*plain))
    # An explicit empty "headers" takes the general path; the stored bytes must not differ.
    general = parse_produce(body_of(*({**r, "headers": {}} for r in plain)))
    assert fast.bodies == general.bodies
    assert fast.key_bytes() == general.key_bytes()
    stored = fast.log_records(now_ms=7)
    assert isinstance(stored, JsonRecords)
    assert encode_batch(10, stored, first_timestamp=7, max_timestamp=7) == encode_batch(
        10, build_fragments(10, general.log_records(now_ms=7)), first_timestamp=7, max_timestamp=7
    )
    for i, ((key, value), body) in enumerate(zip(records, fast.bodies, strict=True)):
        stored_key = key if with_keys else None
        expected_key = (
            None
            if stored_key is None
            else stored_key.encode()
            if isinstance(stored_key, str)
            else orjson.dumps(stored_key)
        )
        assert fast.key_bytes()[i] == expected_key
        assert orjson.loads(b"{" + body + b"}") == {
            "key": stored_key,
            "value": value,
            "headers": {},
        }


def test_a_value_is_stored_as_the_client_wrote_its_json() -> None:
    parsed = parse_produce(b'{"records": [{"key": "\\u00e9", "value": {"a" : [1, 2]}}]}')
    assert parsed.bodies == [b'"key":"\\u00e9","value":{"a" : [1, 2]},"headers":{}']
    assert parsed.key_bytes() == ["é".encode()]


def test_the_general_path_keeps_the_fields_in_the_stored_order() -> None:
    parsed = parse_produce(
        body_of({"headers": {"h": "v"}, "value_b64": "AAE=", "key_b64": "aw==", "timestamp": 5})
    )
    assert parsed.bodies == [b'"key_b64":"aw==","value_b64":"AAE=","headers":{"h":"v"}']
    assert parsed.key_bytes() == [b"k"]
    assert parsed.log_records(now_ms=9) == [(5, parsed.bodies[0])]


ORJSON_REFUSES = [
    b"1e999",
    b"-1E+309",
    b"1" * 310,
    b'"\\ud800"',
    b'"\\udc00x"',
    b'["\xff"]',
    b'"\xed\xa0\x80"',
]


@pytest.mark.parametrize("value", ORJSON_REFUSES)
@pytest.mark.parametrize("field", ["key", "value"])
def test_json_that_orjson_cannot_read_back_is_refused(value: bytes, field: str) -> None:
    record = b'{"%s": %s%s}' % (field.encode(), value, b', "value": 1' if field == "key" else b"")
    with pytest.raises(InvalidRequest):
        parse_produce(b'{"records": [%s]}' % record)


@pytest.mark.parametrize("value", [b"1e308", b'"e100 E-999"', b'"\\ud83d\\ude00"', b"-0.5e-400"])
def test_json_that_only_looks_out_of_range_is_taken(value: bytes) -> None:
    parsed = parse_produce(b'{"records": [{"value": %s}]}' % value)
    assert orjson.loads(b"{" + parsed.bodies[0] + b"}")["value"] == orjson.loads(value)


VALID = b'{"records":[{"value":{"a":[1,2.5e1,"x\\n\\u00e9"],"b":null},"key":"k"},{"value":true}]}'


@given(edits=st.lists(st.tuples(st.integers(0, len(VALID)), st.binary(max_size=3)), max_size=3))
def test_whatever_is_accepted_is_json_orjson_reads(edits: list[tuple[int, bytes]]) -> None:
    body = VALID
    for at, text in edits:
        body = body[:at] + text + body[at + 1 :]
    try:
        parsed = parse_produce(body)
    except InvalidRequest:
        return
    orjson.loads(body)
    for stored in parsed.bodies:
        orjson.loads(b"{" + stored + b"}")


digit_strings = st.text(alphabet="0123456789", min_size=19, max_size=40)
any_integers = st.integers(min_value=-(2**70), max_value=2**70)


@given(
    records=st.lists(
        st.tuples(st.none() | digit_strings | any_integers, digit_strings | any_integers),
        min_size=1,
        max_size=5,
    )
)
def test_integers_are_kept_exact_or_refused_whatever_strings_surround_them(
    records: list[tuple[Any, Any]],
) -> None:
    """Bodies whose keys and values are all strings or null skip the exact integer check:
    a wide integer anywhere among them must still be refused, and long digit runs inside
    strings taken as text."""
    body = json.dumps({"records": [{"key": k, "value": v} for k, v in records]}).encode()
    fits = [-(2**63) <= x <= 2**64 - 1 for pair in records for x in pair if isinstance(x, int)]
    if not all(fits):
        with pytest.raises(InvalidRequest):
            parse_produce(body)
        return
    stored = [json.loads(b"{" + b + b"}") for b in parse_produce(body).bodies]
    assert [(s["key"], s["value"]) for s in stored] == records


@pytest.mark.parametrize(
    ("record", "stored"),
    [
        (b'{"value": 18446744073709551616, "value": "s"}', b'"key":null,"value":"s"'),
        (b'{"value": "s", "value": 18446744073709551616}', None),
        (b'{"key": 18446744073709551616, "key": "k", "value": 1}', b'"key":"k","value":1'),
    ],
)
def test_a_repeated_field_is_read_as_orjson_reads_it(record: bytes, stored: bytes | None) -> None:
    """The stored text and the wide-integer check see the same (last) occurrence."""
    body = b'{"records": [%s]}' % record
    if stored is None:
        with pytest.raises(InvalidRequest):
            parse_produce(body)
    else:
        assert parse_produce(body).bodies == [stored + b',"headers":{}']


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1])
@pytest.mark.parametrize("extra", [{"headers": {"h": "v"}}, {"timestamp": 5}, {"partition": 0}])
def test_the_general_path_refuses_a_wide_integer_too(number: int, extra: dict[str, Any]) -> None:
    """Fields other than key and value send a record down the general path, which checks
    integers the same way."""
    with pytest.raises(InvalidRequest):
        parse_produce(json.dumps({"records": [{"value": {"n": number}, **extra}]}).encode())
    parsed = parse_produce(json.dumps({"records": [{"value": {"n": 2**64 - 1}, **extra}]}).encode())
    assert json.loads(b"{" + parsed.bodies[0] + b"}")["value"] == {"n": 2**64 - 1}
