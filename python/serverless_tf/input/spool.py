"""The bounded-input spool: a member's whole feed, kept as one local TFRecord file plus S3 parts.

Each received group of new row messages is appended to the local file and uploaded as
``jobs/<jobId>/spool/<member>/part-<n>.tfrecord`` BEFORE its messages are deleted, so data
the queue no longer holds is always in S3. Each part carries its messages' ``feedId`` values in
its object metadata, and the end-of-data message is saved as ``end-of-data.json`` before its
marker is deleted, so a restarted worker (resume after a failure) reloads the parts with
:meth:`Spool.reload` and takes only what the queue still holds.

A part is written once (``If-None-Match: *``): a second writer of the same member's spool (a
worker whose lease lapsed while it still ran, beside its replacement) fails with
:class:`SpoolConflictError` instead of overwriting a part; a message both spooled before one of
them stopped is counted once on reload (each part records its messages' row counts).
"""
from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from ..aws.s3 import kind_tagging
from ..protocol.tfrecord import count_frames, frame_records, unframe_records
from .feed import MAX_WAIT_SECONDS, Deadline, EndOfData, FeedError, FeedIdleError, FeedPosition, FeedQueue, RowsMessage, Stop


def spool_prefix(job_id: str, member: str) -> str:
    """The S3 key prefix of a member's spool parts."""
    return f"jobs/{job_id}/spool/{member}/"


END_OF_DATA_OBJECT = "end-of-data.json"
# S3 user metadata is limited to 2 KB per object; a part holds at most one receive (10 messages).
FEED_IDS_METADATA = "feed-ids"
#: Row count of each message of the part, in the order of its ``feed-ids``.
FEED_COUNTS_METADATA = "feed-counts"


class SpoolConflictError(FeedError):
    """Another process wrote this member's next spool part: this worker is not the member's only
    writer (its lease lapsed and a replacement runs). It must stop; the replacement goes on."""


@dataclass
class Spool:
    """Local TFRecord file + S3 parts of one member's bounded feed.

    Example:
        >>> spool = Spool(client("s3"), "bucket", "fit-1", "worker-0", Path("/tmp/x"))  # doctest: +SKIP
        >>> spool.append([rows_message])
    """

    s3: Any
    bucket: str
    job_id: str
    member: str
    directory: Path
    rows: int = 0
    messages: int = 0
    parts: int = 0
    feed_ids: set[str] = field(default_factory=set)
    #: The end-of-data :meth:`reload` found: the feed may be complete without a new message.
    reload_end_of_data: Optional[EndOfData] = None
    #: Called before every write; raises when the member no longer holds its lease (``LeaseKeeper.check``).
    fence: Callable[[], None] = field(default=lambda: None, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{self.member}.tfrecord"
        self.path.write_bytes(b"")

    def reload(self) -> Optional[EndOfData]:
        """Loads the parts an earlier run of this member uploaded; returns its saved end-of-data, if any.

        Call before receiving: rows, messages and ``feedId`` values continue from the parts, so a
        message redelivered after the restart is skipped, and the next part does not overwrite one.
        """
        prefix = spool_prefix(self.job_id, self.member)
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        eod: Optional[EndOfData] = None
        with self.path.open("ab") as f:
            for key in sorted(k for k in keys if k.endswith(".tfrecord")):
                obj = self.s3.get_object(Bucket=self.bucket, Key=key)
                metadata = obj.get("Metadata", {})
                ids = [i for i in metadata.get(FEED_IDS_METADATA, "").split(",") if i]
                counts = [int(c) for c in metadata.get(FEED_COUNTS_METADATA, "").split(",") if c]
                frames = unframe_records(obj["Body"].read())
                if len(counts) == len(ids) and sum(counts) == len(frames):
                    # Message by message: one two writers both spooled is kept once.
                    at = 0
                    for feed_id, count in zip(ids, counts):
                        if feed_id not in self.feed_ids:
                            f.write(frame_records(frames[at:at + count]))
                            self.rows += count
                            self.messages += 1
                            self.feed_ids.add(feed_id)
                        at += count
                else:
                    f.write(frame_records(frames))
                    self.rows += len(frames)
                    self.messages += len(ids)
                    self.feed_ids.update(ids)
                self.parts += 1
        if prefix + END_OF_DATA_OBJECT in keys:
            saved = json.loads(self.s3.get_object(Bucket=self.bucket, Key=prefix + END_OF_DATA_OBJECT)["Body"].read())
            eod = EndOfData(self.member, int(saved["rows"]), int(saved["messages"]), int(saved["steps"]))
        self.reload_end_of_data = eod
        return eod

    def save_end_of_data(self, eod: EndOfData) -> None:
        """Keeps the end-of-data message in S3 before its marker leaves the queue (see :meth:`reload`)."""
        body = json.dumps({"rows": eod.rows, "messages": eod.messages, "steps": eod.steps}).encode()
        self.fence()
        self.s3.put_object(Bucket=self.bucket, Key=spool_prefix(self.job_id, self.member) + END_OF_DATA_OBJECT, Body=body)

    def append(self, group: list[RowsMessage]) -> None:
        """Uploads ``group`` as the next S3 part, then appends it to the local file.

        Messages whose ``feedId`` is already spooled are skipped (redelivery).

        Raises:
            FeedError: when a message's frames do not match its ``count``.
        """
        fresh: list[RowsMessage] = []
        for m in group:
            if m.feed_id in self.feed_ids or any(m.feed_id == f.feed_id for f in fresh):
                continue
            frames = count_frames(m.data)
            if frames != m.count:
                raise FeedError(f"feed message {m.feed_id} says count={m.count} but holds {frames} TFRecord frames")
            fresh.append(m)
        if not fresh:
            return
        data = b"".join(m.data for m in fresh)
        key = f"{spool_prefix(self.job_id, self.member)}part-{self.parts:06d}.tfrecord"
        metadata = {FEED_IDS_METADATA: ",".join(m.feed_id for m in fresh), FEED_COUNTS_METADATA: ",".join(str(m.count) for m in fresh)}
        self.fence()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata, Tagging=kind_tagging("spool"), IfNoneMatch="*")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            raise SpoolConflictError(
                f"{self.member}'s spool part {key} was written by another process: this worker is no longer the member's only "
                f"writer (its lease lapsed and a replacement runs); it stops, the replacement goes on. Job {self.job_id}"
            ) from e
        with self.path.open("ab") as f:
            f.write(data)
        self.parts += 1
        for m in fresh:
            self.feed_ids.add(m.feed_id)
            self.rows += m.count
            self.messages += 1


@dataclass
class SpoolTimes:
    """Seconds a bounded feed's spooling spent per stage (the bench's feed breakdown, bench/feed.ts)."""

    #: SQS receives, with each message's JSON parse and base64 decode.
    receive: float = 0.0
    #: Frame count checks, S3 part uploads and local appends.
    parts: float = 0.0
    #: SQS deletes of what was spooled.
    delete: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"receive": round(self.receive, 3), "parts": round(self.parts, 3), "delete": round(self.delete, 3)}


def spool_bounded_feed(
    queue: FeedQueue,
    spool: Spool,
    idle_timeout_s: float,
    on_progress: Optional[Callable[[FeedPosition], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    times: Optional[SpoolTimes] = None,
) -> EndOfData:
    """Receives a member's whole bounded feed into ``spool``; returns its end-of-data message.

    Ends when end-of-data has arrived and the distinct row messages and rows spooled equal
    its counts. Messages are deleted only after their rows are in S3.

    Args:
        queue: the member's feed queue.
        spool: where rows go.
        idle_timeout_s: fail when nothing arrives for this long.
        on_progress: called with the position after every received group.
        clock: monotonic seconds (tests pass a fake).
        times: where the seconds per stage are added up, if given.

    Returns:
        The end-of-data message (its ``steps`` is what every member runs).

    Raises:
        FeedIdleError: nothing arrived for ``idle_timeout_s``; names the queue and position.
        FeedError: the counts overshoot end-of-data, or a stop arrived on a bounded feed.
    """
    position = FeedPosition(rows=spool.rows, messages=spool.messages, end_of_data=spool.reload_end_of_data)
    idle = Deadline(idle_timeout_s, clock)
    markers: list[str] = []  # end-of-data deliveries: deleted last, so a restarted worker still finds the marker

    def spool_group(rows: list[RowsMessage], handles: list[str]) -> None:
        started = time.perf_counter()
        spool.append(rows)  # S3 first: once deleted, the queue no longer holds these rows
        spooled = time.perf_counter()
        queue.delete(handles)
        if times is not None:
            times.parts += spooled - started
            times.delete += time.perf_counter() - spooled

    # One group is spooled (uploaded, then deleted) while the next is received. Groups are spooled
    # one at a time and in order, each after the one before has finished, so a redelivered message
    # is always checked against every feed id spooled before it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stf-spool") as spooler:
        pending: Optional[Future[None]] = None

        def settle() -> None:
            nonlocal pending
            if pending is None:
                return
            done, pending = pending, None
            done.result()
            position.rows, position.messages = spool.rows, spool.messages
            if on_progress is not None:
                on_progress(position)

        while True:
            eod = position.end_of_data
            if eod is not None:
                settle()
                if (spool.messages, spool.rows) == (eod.messages, eod.rows):
                    spool.save_end_of_data(eod)
                    queue.delete(markers)
                    return eod
                if spool.messages > eod.messages or spool.rows > eod.rows:
                    raise FeedError(
                        f"{queue.member} received more than end-of-data announced on {queue.url}: {position.describe()}; "
                        "the feed sender's counts are wrong; fail the job and re-run the feed"
                    )
            remaining = idle.remaining()
            if remaining <= 0:
                settle()
                raise FeedIdleError(
                    f"{queue.member} received nothing on its feed queue {queue.url} for {idle_timeout_s:.0f} s; "
                    f"position: {position.describe()}. Check the shard-feed functions of job {queue.job_id} "
                    "(the deadline is 12 leases of the job's leaseMs)"
                )
            started = time.perf_counter()
            received = queue.receive(min(MAX_WAIT_SECONDS, max(0, remaining)))
            if times is not None:
                times.receive += time.perf_counter() - started
            if not received:
                continue
            idle.touch()
            rows = [r.body for r in received if isinstance(r.body, RowsMessage)]
            for r in received:
                if isinstance(r.body, EndOfData):
                    if position.end_of_data is not None and position.end_of_data != r.body:
                        raise FeedError(f"two different end-of-data messages on {queue.url}: {position.end_of_data} then {r.body}")
                    position.end_of_data = r.body
                    markers.append(r.receipt_handle)
                elif isinstance(r.body, Stop):
                    raise FeedError(f"a stop message arrived on the bounded feed {queue.url} at {position.describe()}; the job was stopped")
            settle()
            if rows:
                position.last_feed_id = rows[-1].feed_id
            pending = spooler.submit(spool_group, rows, [r.receipt_handle for r in received if not isinstance(r.body, EndOfData)])
