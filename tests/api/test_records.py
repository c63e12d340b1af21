"""Request parsing (api/http/records.py): the fast path for plain records stores exactly the
bytes the general path stores."""

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.http.records import parse_record

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@given(key=st.none() | st.text(), value=json_values, with_key=st.booleans())
def test_a_plain_record_is_stored_as_the_general_path_stores_it(
    key: str | None, value: Any, with_key: bool
) -> None:
    plain = {"key": key, "value": value} if with_key else {"value": value}
    # An explicit empty "headers" takes the general path; the stored bytes must not differ.
    assert parse_record(plain, 0) == parse_record({**plain, "headers": {}}, 0)
    _, key_bytes, _, body = parse_record(plain, 0)
    stored_key = key if with_key else None
    assert key_bytes == (None if stored_key is None else stored_key.encode())
    assert orjson.loads(b"{" + body + b"}") == {"key": stored_key, "value": value, "headers": {}}
