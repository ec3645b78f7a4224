"""A member's feed queue (docs/protocol.md "Feed messages"): parse, dedupe, receive, acknowledge.

The feed is at-least-once (SQS redelivers after the visibility timeout, shard-feed retries
resend), so every consumer here skips a ``feedId`` it already holds. Messages are deleted
only after their rows are safe: spooled to S3 (bounded training) or yielded to the user
(live inference).
"""
from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

#: The most TFRecord bytes a deflated feed message may inflate to (MAX_INFLATED_FEED_BYTES in src/protocol/limits.ts).
MAX_INFLATED_FEED_BYTES = 16 * 1_048_576
# SQS allows at most 20 s of long polling and 10 messages per receive / delete batch.
MAX_WAIT_SECONDS = 20
MAX_MESSAGES = 10


class FeedError(RuntimeError):
    """A feed message the worker cannot use, or a feed whose counts do not add up."""


class FeedIdleError(FeedError):
    """The feed delivered nothing for the idle timeout: the sender stalled or died."""


@dataclass(frozen=True)
class RowsMessage:
    feed_id: str
    shard: str
    seq: int
    member: str
    count: int
    data: bytes  # TFRecord frames, exactly `count` of them


@dataclass(frozen=True)
class EndOfData:
    member: str
    rows: int
    messages: int
    steps: int


@dataclass(frozen=True)
class Stop:
    job: str


FeedMessage = Union[RowsMessage, EndOfData, Stop]


@dataclass(frozen=True)
class Received:
    """One SQS delivery: its receipt handle (to delete it) and its parsed body."""

    receipt_handle: str
    message_id: str
    body: FeedMessage


@dataclass
class FeedPosition:
    """What the feed has delivered so far; quoted in errors so an operator can find the gap."""

    rows: int = 0
    messages: int = 0
    last_feed_id: Optional[str] = None
    end_of_data: Optional[EndOfData] = None

    def describe(self) -> str:
        eod = "none" if self.end_of_data is None else f"rows={self.end_of_data.rows} messages={self.end_of_data.messages}"
        return f"{self.rows} rows in {self.messages} distinct row messages, last feedId={self.last_feed_id!r}, end-of-data: {eod}"


def _inflate(data: bytes, encoding: Any, mid: Any) -> bytes:
    """The TFRecord frames of a rows message's decoded ``data``: inflated when ``encoding`` is ``deflate``."""
    if encoding is None:
        return data
    if encoding != "deflate":
        raise FeedError(f"feed message {mid} has an unknown encoding. Received: encoding={encoding!r}; expected deflate or none")
    inflater = zlib.decompressobj(wbits=-15)
    frames = inflater.decompress(data, MAX_INFLATED_FEED_BYTES + 1)
    if len(frames) > MAX_INFLATED_FEED_BYTES:
        raise FeedError(f"feed message {mid} inflates to more than {MAX_INFLATED_FEED_BYTES} bytes, the most a feed message may carry; the sender is not this package's shard-feed")
    if not inflater.eof:
        raise FeedError(f"feed message {mid} holds a truncated deflate stream ({len(data)} bytes)")
    return frames


def parse_feed_message(message: dict[str, Any], job_id: str, member: str) -> FeedMessage:
    """Parses one SQS message of a feed queue.

    Args:
        message: an entry of ``ReceiveMessage``'s ``Messages`` (with message attributes).
        job_id: the job this worker runs; a message of another job is an error.
        member: this worker's member name (``worker-0``).

    Returns:
        A :class:`RowsMessage`, :class:`EndOfData` or :class:`Stop`.

    Raises:
        FeedError: on a body that is not a v1 feed message of this job and member.
    """
    mid = message.get("MessageId")
    try:
        body = json.loads(message["Body"])
    except RecursionError as e:
        # A hostile body of deep nesting would otherwise escape as a RecursionError.
        raise FeedError(f"feed message {mid} nests JSON too deeply to be a feed message") from e
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise FeedError(f"feed message {mid} is not JSON ({e}). Received: {str(message.get('Body'))[:200]!r}") from e
    if not isinstance(body, dict) or body.get("v") != 1:
        raise FeedError(f"feed message {mid} is not a v1 feed message. Received: {str(body)[:200]}")
    if body.get("job") != job_id:
        raise FeedError(f"feed message {mid} belongs to job {body.get('job')!r}, not {job_id!r}; check the queue URLs in the job spec")
    kind = body.get("kind")
    if kind == "stop":
        return Stop(job_id)
    if body.get("member") != member:
        raise FeedError(f"feed message {mid} is addressed to member {body.get('member')!r}, but this is {member!r}; check queues.feed in the job spec")
    try:
        if kind == "rows":
            attributes = message.get("MessageAttributes")
            feed_attr = attributes.get("feedId") if isinstance(attributes, dict) else None
            attr = feed_attr.get("StringValue") if isinstance(feed_attr, dict) else None
            if attr is not None and not isinstance(attr, str):
                raise ValueError(f"feedId attribute must be a string, got {attr!r}")
            feed_id = attr or f"{body['shard']}:{body['seq']}:{member}"
            data = _inflate(base64.b64decode(body["data"], validate=True), body.get("encoding"), mid)
            return RowsMessage(feed_id, str(body["shard"]), int(body["seq"]), member, int(body["count"]), data)
        if kind == "end-of-data":
            return EndOfData(member, int(body["rows"]), int(body["messages"]), int(body["steps"]))
    except (KeyError, TypeError, ValueError, OverflowError, binascii.Error, zlib.error) as e:
        raise FeedError(f"feed message {mid} of kind {kind!r} lacks or mangles a field ({e!r}). Received: {str(body)[:200]}") from e
    raise FeedError(f"feed message {mid} has an unknown kind. Received: kind={kind!r}; expected rows, end-of-data or stop")


@dataclass
class FeedQueue:
    """Receives and deletes the messages of one member's feed queue.

    Example:
        >>> feed = FeedQueue(client("sqs"), url, "fit-1", "worker-0")  # doctest: +SKIP
        >>> batch = feed.receive(wait_seconds=20)
    """

    sqs: Any
    url: str
    job_id: str
    member: str
    #: Called before every write; raises when the member no longer holds its lease (``LeaseKeeper.check``).
    fence: Callable[[], None] = field(default=lambda: None, repr=False)

    def receive(self, wait_seconds: float) -> list[Received]:
        """Long-polls up to ``wait_seconds`` (0..20) for up to 10 messages."""
        wait = max(0, min(MAX_WAIT_SECONDS, int(wait_seconds)))
        response = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=MAX_MESSAGES,
            WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
        )
        return [
            Received(m["ReceiptHandle"], m.get("MessageId", ""), parse_feed_message(m, self.job_id, self.member))
            for m in response.get("Messages", [])
        ]

    def delete(self, receipt_handles: list[str]) -> None:
        """Deletes messages by receipt handle, 10 per request.

        Raises:
            FeedError: when SQS refuses to delete one (the rows would come back and be skipped, but say so).
        """
        for start in range(0, len(receipt_handles), MAX_MESSAGES):
            self.fence()
            chunk = receipt_handles[start:start + MAX_MESSAGES]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
            failed = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries).get("Failed", [])
            if failed:
                raise FeedError(f"SQS refused to delete {len(failed)} feed message(s) on {self.url}: {failed[:3]}")


    def keep(self, receipt_handles: list[str], seconds: int) -> None:
        """Makes held messages invisible for ``seconds`` more, 10 per request.

        A handle SQS no longer knows (its message was deleted meanwhile) is skipped: there is
        nothing left to keep.
        """
        for start in range(0, len(receipt_handles), MAX_MESSAGES):
            self.fence()
            chunk = receipt_handles[start:start + MAX_MESSAGES]
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds} for i, h in enumerate(chunk)]
            self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)


class VisibilityKeeper:
    """Keeps the feed messages a worker holds but has not used yet from coming back.

    A received message is deleted only once its rows were used, which can be long after its
    visibility timeout (a slow training step, a partial batch waiting for the end of data); past
    ``maxReceiveCount`` redeliveries a held row or end-of-data marker would go to the job's DLQ
    and the job could never see its end of data. A thread re-hides every held message for
    ``hide_seconds`` every ``every_seconds`` until it is released; if the worker dies, its
    messages come back within ``hide_seconds``.

    Example:
        >>> keeper = VisibilityKeeper(queue).start()  # doctest: +SKIP
        >>> keeper.hold(["handle-1"]); keeper.release(["handle-1"]); keeper.stop()
    """

    def __init__(self, queue: FeedQueue, hide_seconds: int = 60, every_seconds: float = 20.0):
        self.queue, self.hide_seconds, self.every_seconds = queue, hide_seconds, every_seconds
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stf-keep-{queue.member}", daemon=True)
        self.kept = 0

    def start(self) -> "VisibilityKeeper":
        self._thread.start()
        return self

    def hold(self, receipt_handles: list[str]) -> None:
        with self._lock:
            self._held.update(receipt_handles)

    def release(self, receipt_handles: list[str]) -> None:
        with self._lock:
            self._held.difference_update(receipt_handles)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self.every_seconds):
            with self._lock:
                handles = sorted(self._held)
            try:
                self.queue.keep(handles, self.hide_seconds)
                self.kept += len(handles)
            except Exception as e:  # noqa: BLE001 - a failed extension is retried next round; the feed goes on
                print(f"[feed {self.queue.member}] extending the visibility of {len(handles)} held messages failed: {e!r}", file=sys.stderr, flush=True)


@dataclass
class Deadline:
    """An idle deadline that moves whenever the feed delivers something."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    last: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.last = self.clock()

    def touch(self) -> None:
        self.last = self.clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.last)
