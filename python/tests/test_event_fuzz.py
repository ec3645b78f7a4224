"""Fuzzing the worker's message parsing: arbitrary bodies raise only the typed FeedError."""
import json

from hypothesis import given, settings, strategies as st

from serverless_tf.input.feed import FeedError, parse_feed_message

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

bodies = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps({"v": 1, "job": "j", "member": "worker-0", "kind": "rows", "shard": v, "seq": v, "count": v, "data": v})),
    json_values.map(lambda v: json.dumps({"v": 1, "job": "j", "member": "worker-0", "kind": "end-of-data", "rows": v, "messages": v, "steps": v})),
    st.integers(min_value=1, max_value=50_000).map(lambda n: "[" * n + "]" * n),
)

attributes = st.one_of(st.none(), json_values, st.just({"feedId": "not-a-dict"}), st.just({"feedId": {"StringValue": 5}}))


@settings(max_examples=400, deadline=None)
@given(body=bodies, attrs=attributes)
def test_arbitrary_feed_messages_raise_only_feed_error(body, attrs):
    message = {"MessageId": "m-1", "Body": body, "MessageAttributes": attrs}
    try:
        parse_feed_message(message, "j", "worker-0")
    except FeedError:
        pass


def test_deeply_nested_body_is_a_feed_error_not_a_recursion_error():
    message = {"MessageId": "m-1", "Body": "[" * 100_000 + "]" * 100_000}
    try:
        parse_feed_message(message, "j", "worker-0")
    except FeedError as e:
        assert "nested" in str(e) or "JSON" in str(e)
    else:
        raise AssertionError("a 100,000-deep body was accepted")
