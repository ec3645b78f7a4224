"""Resume: a restarted member reloads its spool from S3 and takes only what its feed queue still holds."""
from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from serverless_tf.input.feed import FeedQueue
from serverless_tf.input.spool import END_OF_DATA_OBJECT, Spool, spool_bounded_feed, spool_prefix
from serverless_tf.protocol.example import encode_example
from serverless_tf.protocol.schema import columns_from_json
from serverless_tf.protocol.tfrecord import frame_records

pytestmark = pytest.mark.skipif(not os.environ.get("AWS_ENDPOINT_URL"), reason="needs the emulator (run through npm test)")
COLUMNS = columns_from_json([{"name": "x", "dtype": "INT64", "shape": "scalar"}])
JOB, MEMBER = "fit-resume", "worker-0"


def frames(start: int, n: int) -> bytes:
    return frame_records([encode_example({"x": i}, COLUMNS) for i in range(start, start + n)])



def send_rows(sqs: Any, url: str, seq: int, start: int, n: int) -> None:
    body = {"v": 1, "kind": "rows", "job": JOB, "shard": "s0", "seq": seq, "member": MEMBER, "count": n, "data": base64.b64encode(frames(start, n)).decode()}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageAttributes={"feedId": {"DataType": "String", "StringValue": f"s0:{seq}:{MEMBER}"}})


def send_end(sqs: Any, url: str, rows: int, messages: int) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"v": 1, "kind": "end-of-data", "job": JOB, "member": MEMBER, "rows": rows, "messages": messages, "steps": 1}))


def test_a_restarted_member_reloads_its_parts_skips_a_redelivered_message_and_reads_the_rest(queue_and_bucket, tmp_path):
    sqs, s3, url, bucket = queue_and_bucket
    # The first run spooled message 0 to S3, then died before deleting it: SQS redelivers it.
    Spool(s3, bucket, JOB, MEMBER, tmp_path / "first").append([_rows_message(0, 0, 3)])
    send_rows(sqs, url, 0, 0, 3)
    send_rows(sqs, url, 1, 3, 2)
    send_end(sqs, url, rows=5, messages=2)

    spool = Spool(s3, bucket, JOB, MEMBER, tmp_path / "second")
    assert spool.reload() is None
    eod = spool_bounded_feed(FeedQueue(sqs, url, JOB, MEMBER), spool, idle_timeout_s=10)

    assert (eod.rows, spool.rows, spool.messages, spool.parts) == (5, 5, 2, 2)
    assert spool.path.read_bytes() == frames(0, 3) + frames(3, 2)
    parts = s3.list_objects_v2(Bucket=bucket, Prefix=spool_prefix(JOB, MEMBER))["Contents"]
    tags = [s3.get_object_tagging(Bucket=bucket, Key=p["Key"])["TagSet"] for p in parts if p["Key"].endswith(".tfrecord")]
    assert tags == [[{"Key": "stf-kind", "Value": "spool"}]] * 2, "the lifecycle rule for spool parts acts on this tag"


def test_a_member_restarted_after_its_feed_ended_needs_no_message(queue_and_bucket, tmp_path):
    sqs, s3, url, bucket = queue_and_bucket
    send_rows(sqs, url, 0, 0, 4)
    send_end(sqs, url, rows=4, messages=1)
    spool_bounded_feed(FeedQueue(sqs, url, JOB, MEMBER), Spool(s3, bucket, JOB, MEMBER, tmp_path / "first"), idle_timeout_s=10)
    assert s3.head_object(Bucket=bucket, Key=spool_prefix(JOB, MEMBER) + END_OF_DATA_OBJECT)

    spool = Spool(s3, bucket, JOB, MEMBER, tmp_path / "second")
    saved = spool.reload()
    eod = spool_bounded_feed(FeedQueue(sqs, url, JOB, MEMBER), spool, idle_timeout_s=1)  # the queue is empty: an idle wait would fail

    assert saved == eod and (eod.rows, spool.rows) == (4, 4)
    assert spool.path.read_bytes() == frames(0, 4)


def _rows_message(seq: int, start: int, n: int) -> Any:
    from serverless_tf.input.feed import RowsMessage

    return RowsMessage(f"s0:{seq}:{MEMBER}", "s0", seq, MEMBER, n, frames(start, n))
