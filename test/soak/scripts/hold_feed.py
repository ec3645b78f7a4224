"""Holds a feed message for a long training step: ``hold_feed.py <feed url> <dlq url> <hold seconds>``.

Sends one rows message of 8 rows to a member's feed queue (created by the soak as the coordinator
creates it: 60 s visibility, maxReceiveCount 5), takes its first batch of 4 through the worker's
own LiveBatches with its default keeper (re-hide every 20 s), then sleeps ``hold`` seconds, as a
slow training step would, while the other 4 rows of the message wait. Prints one JSON line:
whether the held message came back, what reached the DLQ, and how often the keeper re-hid it.
"""
from __future__ import annotations

import base64
import json
import sys
import time

from serverless_tf.aws import client
from serverless_tf.input.feed import FeedQueue
from serverless_tf.input.live_feed import LiveBatches
from serverless_tf.protocol.example import encode_example, parse_rows
from serverless_tf.protocol.schema import columns_from_json
from serverless_tf.protocol.tfrecord import frame_records

COLUMNS = columns_from_json([{"name": "x", "dtype": "FLOAT32", "shape": {"fixed": 2}}])
JOB, MEMBER = "fit-held00000", "worker-0"


def main(feed_url: str, dlq_url: str, hold_s: float) -> None:
    sqs = client("sqs")
    data = frame_records([encode_example({"x": [float(i), 1.0]}, COLUMNS) for i in range(8)])
    body = {"v": 1, "kind": "rows", "job": JOB, "shard": "s0", "seq": 0, "member": MEMBER, "count": 8, "data": base64.b64encode(data).decode()}
    sqs.send_message(QueueUrl=feed_url, MessageBody=json.dumps(body), MessageAttributes={"feedId": {"DataType": "String", "StringValue": f"s0:0:{MEMBER}"}})
    live = LiveBatches(FeedQueue(sqs, feed_url, JOB, MEMBER), parse_rows(COLUMNS), batch_size=4, flush_after_ms=100, bounded=False, idle_timeout_s=hold_s + 120)
    sizes, came_back, started = [], [], time.monotonic()
    for batch in live:
        sizes.append(int(batch["x"].shape[0]))
        if len(sizes) == 1:
            while time.monotonic() - started < hold_s:  # the slow step; look for the held message meanwhile
                time.sleep(30)
                came_back += sqs.receive_message(QueueUrl=feed_url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            sqs.send_message(QueueUrl=feed_url, MessageBody=json.dumps({"v": 1, "kind": "stop", "job": JOB}))
    dlq = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", [])
    print(json.dumps({"heldSeconds": round(time.monotonic() - started), "batches": sizes, "cameBack": len(came_back), "dlq": len(dlq), "kept": live.keeper.kept}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
