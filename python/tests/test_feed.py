"""The worker's feed side in-process: remainder plans, spec validation, feed messages, the spool
and the live dataset against the emulator, and ``ctx.write``'s row conversion."""
from __future__ import annotations

import base64
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from serverless_tf.input.feed import MAX_INFLATED_FEED_BYTES, FeedError, FeedIdleError, FeedQueue, RowsMessage, parse_feed_message
from serverless_tf.input.live_feed import LiveBatches
from serverless_tf.input.remainder import RemainderError, batch_sizes, spool_dataset
from serverless_tf.input.spool import Spool, SpoolConflictError, spool_bounded_feed
from serverless_tf.protocol.example import encode_example, parse_rows
from serverless_tf.protocol.schema import columns_from_json
from serverless_tf.protocol.spec import JobSpec, SpecError
from serverless_tf.protocol.tfrecord import frame_records
from serverless_tf.worker.output import OutputError, rows_from_outputs

COLUMNS = columns_from_json([
    {"name": "x", "dtype": "FLOAT32", "shape": {"fixed": 2}},
    {"name": "tags", "dtype": "STRING", "shape": "var"},
])
needs_emulator = pytest.mark.skipif(not os.environ.get("AWS_ENDPOINT_URL"), reason="needs the emulator (run through npm test)")


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"x": [float(i), 1.0], "tags": ["t"] * (i % 3)} for i in range(start, start + n)]


def frames(rs: list[dict[str, Any]]) -> bytes:
    return frame_records([encode_example(r, COLUMNS) for r in rs])


# -- remainder plans -------------------------------------------------------------------------


@pytest.mark.parametrize("rows_n,batch,steps", [(10, 3, 5), (500, 3, 167), (7, 1, 7), (12, 4, 3), (9, 4, 5)])
def test_flush_runs_exactly_steps_batches_full_ones_first_none_empty(rows_n, batch, steps):
    sizes = batch_sizes("flush", rows_n, batch, steps)
    assert len(sizes) == steps and sum(sizes) == rows_n
    assert min(sizes) >= 1 and max(sizes) <= batch and sizes == sorted(sizes, reverse=True)


def test_pad_fills_to_steps_with_a_partial_then_empty_batches():
    assert batch_sizes("pad", 7, 3, 4) == [3, 3, 1, 0]


def test_drop_uses_only_full_batches():
    assert batch_sizes("drop", 11, 3, 2) == [3, 3]


@pytest.mark.parametrize("policy,rows_n,steps", [("drop", 5, 2), ("pad", 10, 3), ("flush", 2, 3), ("flush", 13, 4)])
def test_counts_the_steps_cannot_hold_fail_quoting_them(policy, rows_n, steps):
    with pytest.raises(RemainderError, match=f"rows={rows_n}, batch_size=3, steps={steps}"):
        batch_sizes(policy, rows_n, 3, steps)


def test_the_pad_dataset_masks_padding_and_keeps_var_len_columns(tmp_path):
    path = tmp_path / "spool.tfrecord"
    path.write_bytes(frames(rows(4)))
    ds = spool_dataset(path, COLUMNS, "pad", 4, 3, 3)
    batches = list(ds)
    assert len(batches) == 3
    assert [b["__mask"].numpy().tolist() for b in batches] == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert batches[0]["tags"].to_list() == [[], [b"t"], [b"t", b"t"]]
    assert len(list(ds)) == 3  # re-iterable: one pass per epoch


def test_the_flush_dataset_keeps_spool_order_across_short_batches(tmp_path):
    path = tmp_path / "spool.tfrecord"
    path.write_bytes(frames(rows(10)))
    ds = spool_dataset(path, COLUMNS, "flush", 10, 3, 5)
    firsts = [b["x"].numpy()[:, 0].tolist() for b in ds]
    assert firsts == [[0, 1, 2], [3, 4, 5], [6, 7], [8], [9]]


# -- spec ------------------------------------------------------------------------------------


def spec_dict(**overrides: Any) -> dict[str, Any]:
    base = {
        "version": 1, "jobId": "fit-abc", "mode": "train", "cluster": {"worker": 2, "ps": 0},
        "python": {"scripts": ["s3://b/jobs/fit-abc/code/model.py"], "entry": "train", "hyperParams": {}, "env": {}},
        "input": {"columns": [{"name": "x", "dtype": "FLOAT32", "shape": "scalar"}]}, "output": None,
        "batchSize": 32, "remainder": {"policy": "drop"}, "bounded": True,
        "queues": {"feed": {"worker-0": "u0", "worker-1": "u1"}, "output": None, "dlq": None},
        "bucket": "b", "model": None, "initModelUri": None, "checkpoint": {"everySteps": 0, "everySeconds": 0}, "leaseMs": 10000,
    }
    base.update(overrides)
    return base


def test_a_valid_spec_parses_into_typed_fields_with_derived_deadlines():
    spec = JobSpec.from_dict(spec_dict())
    assert spec.cluster.members() == ["worker-0", "worker-1"]
    assert spec.feed_idle_timeout_ms == 120_000 and spec.barrier_deadline_ms == 300_000
    assert spec.feed_queue("worker-1") == "u1"


@pytest.mark.parametrize("override,quoted", [
    ({"remainder": {"policy": "round"}}, "'policy': 'round'"),
    ({"batchSize": 0}, "batchSize=0"),
    ({"python": {"scripts": ["model.py"], "entry": "train"}}, "['model.py']"),
    ({"mode": "serve"}, "mode='serve'"),
    ({"remainder": {"policy": "flush"}}, "remainder.afterMs=None"),
    # A secret outside serverless-tf/ (the only ones a job role may read) is refused by name.
    ({"python": {"scripts": ["s3://b/m.py"], "entry": "train", "secrets": {"T": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123"}}}, "secret:prod/db-AbC123"),
])
def test_an_invalid_spec_fails_quoting_the_field_and_value(override, quoted):
    with pytest.raises(SpecError) as e:
        JobSpec.from_dict(spec_dict(**override))
    assert quoted in str(e.value)


def test_an_inference_spec_needs_output_columns():
    with pytest.raises(SpecError, match="output.columns"):
        JobSpec.from_dict(spec_dict(mode="inference"))


# -- feed messages ---------------------------------------------------------------------------


def sqs_message(body: dict[str, Any], feed_id: str | None = None) -> dict[str, Any]:
    attrs = {"feedId": {"StringValue": feed_id, "DataType": "String"}} if feed_id else {}
    return {"MessageId": "m1", "ReceiptHandle": "r", "Body": json.dumps(body), "MessageAttributes": attrs}


def test_a_rows_message_parses_with_its_feed_id_and_frames():
    data = frames(rows(2))
    body = {"v": 1, "kind": "rows", "job": "fit-abc", "shard": "s1", "seq": 4, "member": "worker-0", "count": 2, "data": base64.b64encode(data).decode()}
    parsed = parse_feed_message(sqs_message(body, "s1:4:worker-0"), "fit-abc", "worker-0")
    assert parsed == RowsMessage("s1:4:worker-0", "s1", 4, "worker-0", 2, data)


def deflated(data: bytes) -> str:
    packer = zlib.compressobj(1, zlib.DEFLATED, -15)
    return base64.b64encode(packer.compress(data) + packer.flush()).decode()


def test_a_deflated_rows_message_parses_into_its_frames():
    data = frames(rows(3))
    body = {"v": 1, "kind": "rows", "job": "fit-abc", "shard": "s1", "seq": 0, "member": "worker-0", "count": 3, "encoding": "deflate", "data": deflated(data)}
    assert parse_feed_message(sqs_message(body, "s1:0:worker-0"), "fit-abc", "worker-0") == RowsMessage("s1:0:worker-0", "s1", 0, "worker-0", 3, data)


@pytest.mark.parametrize("encoding,data,match", [
    ("gzip", base64.b64encode(b"x").decode(), "encoding='gzip'"),
    ("deflate", base64.b64encode(b"not deflate at all").decode(), "mangles"),
    ("deflate", deflated(frames(rows(2)))[:-8], "truncated|mangles"),
    # A message that would inflate past the limit is refused before it is held in memory whole.
    ("deflate", deflated(bytes(MAX_INFLATED_FEED_BYTES + 1)), f"more than {MAX_INFLATED_FEED_BYTES}"),
])
def test_a_rows_message_of_an_unknown_or_broken_encoding_is_refused(encoding, data, match):
    body = {"v": 1, "kind": "rows", "job": "fit-abc", "shard": "s1", "seq": 0, "member": "worker-0", "count": 1, "encoding": encoding, "data": data}
    with pytest.raises(FeedError, match=match):
        parse_feed_message(sqs_message(body), "fit-abc", "worker-0")


@pytest.mark.parametrize("body,match", [
    ({"v": 1, "kind": "rows", "job": "other-job"}, "belongs to job 'other-job'"),
    ({"v": 1, "kind": "end-of-data", "job": "fit-abc", "member": "worker-1"}, "addressed to member 'worker-1'"),
    ({"v": 1, "kind": "rewind", "job": "fit-abc", "member": "worker-0"}, "kind='rewind'"),
    ({"v": 2, "kind": "rows"}, "not a v1 feed message"),
])
def test_a_foreign_or_unknown_feed_message_is_refused_with_what_it_held(body, match):
    with pytest.raises(FeedError, match=match):
        parse_feed_message(sqs_message(body), "fit-abc", "worker-0")


# -- spool and live dataset against the emulator ----------------------------------------------



def send_rows(sqs: Any, url: str, member: str, seq: int, rs: list[dict[str, Any]], job: str = "fit-abc") -> None:
    body = {"v": 1, "kind": "rows", "job": job, "shard": "s0", "seq": seq, "member": member, "count": len(rs), "data": base64.b64encode(frames(rs)).decode()}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageAttributes={"feedId": {"DataType": "String", "StringValue": f"s0:{seq}:{member}"}})


@needs_emulator
def test_the_spool_skips_a_redelivered_message_and_empties_the_queue(queue_and_bucket, tmp_path):
    sqs, s3, url, bucket = queue_and_bucket
    send_rows(sqs, url, "worker-0", 0, rows(3))
    send_rows(sqs, url, "worker-0", 1, rows(2, 3))
    send_rows(sqs, url, "worker-0", 0, rows(3))  # redelivery
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"v": 1, "kind": "end-of-data", "job": "fit-abc", "member": "worker-0", "rows": 5, "messages": 2, "steps": 2}))
    spool = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path)

    eod = spool_bounded_feed(FeedQueue(sqs, url, "fit-abc", "worker-0"), spool, idle_timeout_s=10)

    assert (eod.rows, spool.rows, spool.messages) == (5, 5, 2)
    assert spool.path.read_bytes() == frames(rows(3)) + frames(rows(2, 3))
    parts = [p for p in s3.list_objects_v2(Bucket=bucket, Prefix="jobs/fit-abc/spool/worker-0/")["Contents"] if p["Key"].endswith(".tfrecord")]
    assert b"".join(s3.get_object(Bucket=bucket, Key=p["Key"])["Body"].read() for p in sorted(parts, key=lambda p: p["Key"])) == spool.path.read_bytes()
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


@needs_emulator
def test_a_silent_feed_fails_naming_the_queue_and_the_last_position(queue_and_bucket, tmp_path):
    sqs, s3, url, bucket = queue_and_bucket
    send_rows(sqs, url, "worker-0", 7, rows(2))
    spool = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path)

    with pytest.raises(FeedIdleError) as e:
        spool_bounded_feed(FeedQueue(sqs, url, "fit-abc", "worker-0"), spool, idle_timeout_s=1.5)

    assert url in str(e.value) and "last feedId='s0:7:worker-0'" in str(e.value) and "2 rows" in str(e.value)


@needs_emulator
def test_the_live_dataset_flushes_a_partial_batch_and_ends_on_stop(queue_and_bucket):
    sqs, _s3, url, _bucket = queue_and_bucket
    send_rows(sqs, url, "worker-0", 0, rows(5))
    live = LiveBatches(FeedQueue(sqs, url, "fit-abc", "worker-0"), parse_rows(COLUMNS), batch_size=4, flush_after_ms=100,
                       bounded=False, idle_timeout_s=10)
    sizes = []
    for batch in live:
        sizes.append(int(batch["x"].shape[0]))
        if len(sizes) == 2:  # the partial batch went out without a next row: now stop the stream
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"v": 1, "kind": "stop", "job": "fit-abc"}))
    assert sizes == [4, 1] and live.rows_yielded == 5
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


# -- ctx.write rows ----------------------------------------------------------------------------


OUT = columns_from_json([{"name": "label", "dtype": "INT64", "shape": "scalar"}, {"name": "probs", "dtype": "FLOAT32", "shape": {"fixed": 2}}])


def test_write_accepts_columns_with_a_batch_dimension_and_a_dense_1_head():
    import numpy as np

    got = rows_from_outputs({"label": np.array([[1], [0]]), "probs": np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)}, OUT, 2)
    assert [r["label"] for r in got] == [1, 0] and len(got[1]["probs"]) == 2


def test_write_with_another_row_count_than_the_batch_is_a_clear_error():
    with pytest.raises(OutputError, match="received 1 rows, but the batch it answers has 2"):
        rows_from_outputs([{"label": 1, "probs": [0.5, 0.5]}], OUT, 2)


def test_write_names_missing_output_columns():
    with pytest.raises(OutputError, match=r"missing output column\(s\) \['probs'\]"):
        rows_from_outputs({"label": [1, 2]}, OUT, 2)


@needs_emulator
def test_rows_held_longer_than_the_visibility_timeout_stay_hidden_until_used(queue_and_bucket):
    # Arrange: a 1 s visibility timeout, and a consumer that spends 3 s on its first batch while
    # the second batch's rows (same message) wait: without the keeper SQS would deliver it again.
    sqs, _s3, url, _bucket = queue_and_bucket
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    send_rows(sqs, url, "worker-0", 0, rows(8))
    live = LiveBatches(FeedQueue(sqs, url, "fit-abc", "worker-0"), parse_rows(COLUMNS), batch_size=4, flush_after_ms=100,
                       bounded=False, idle_timeout_s=10, keep_every_seconds=0.3)
    seen_while_held = []

    # Act
    sizes = []
    for batch in live:
        sizes.append(int(batch["x"].shape[0]))
        if len(sizes) == 1:
            time.sleep(3)
            seen_while_held = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"v": 1, "kind": "stop", "job": "fit-abc"}))

    # Assert
    assert seen_while_held == [], "the held message came back while its rows were being used"
    assert sizes == [4, 4] and live.keeper.kept > 0
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


def rows_message(seq: int, rs: list[dict[str, Any]]) -> RowsMessage:
    return RowsMessage(f"s0:{seq}:worker-0", "s0", seq, "worker-0", len(rs), frames(rs))


@needs_emulator
def test_a_second_writer_of_a_members_spool_fails_instead_of_overwriting_a_part(queue_and_bucket, tmp_path):
    # Arrange: the member's replacement wrote part 0; the stale worker, unaware, writes its own part 0.
    _sqs, s3, _url, bucket = queue_and_bucket
    replacement = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path / "new")
    stale = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path / "old")
    replacement.append([rows_message(0, rows(3))])

    # Act
    with pytest.raises(SpoolConflictError) as e:
        stale.append([rows_message(1, rows(2, 3))])

    # Assert
    assert "part-000000" in str(e.value) and "lease" in str(e.value)
    part = s3.get_object(Bucket=bucket, Key="jobs/fit-abc/spool/worker-0/part-000000.tfrecord")["Body"].read()
    assert part == frames(rows(3))


@needs_emulator
def test_a_message_spooled_by_two_writers_is_reloaded_once(queue_and_bucket, tmp_path):
    # Arrange: both writers held message 1 (two receipts of one message) and spooled it in their parts.
    _sqs, s3, _url, bucket = queue_and_bucket
    first = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path / "a")
    first.append([rows_message(0, rows(3)), rows_message(1, rows(2, 3))])
    second = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path / "b")
    second.parts = 1
    second.append([rows_message(1, rows(2, 3)), rows_message(2, rows(4, 5))])

    # Act
    restarted = Spool(s3, bucket, "fit-abc", "worker-0", tmp_path / "c")
    restarted.reload()

    # Assert
    assert (restarted.rows, restarted.messages, restarted.parts) == (9, 3, 2)
    assert restarted.path.read_bytes() == frames(rows(3)) + frames(rows(2, 3)) + frames(rows(4, 5))
