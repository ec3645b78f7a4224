"""The live dataset: batches as rows arrive (inference, and unbounded input).

A full batch is yielded at once; a partial one when the data is complete (bounded: the
end-of-data counts are met; unbounded: a stop message) or when ``flush_after_ms`` passed without
a new row. No batch waits for the next record ("no one-behind"): the moment the queue has
nothing more for now, what is held goes out after ``flush_after_ms`` (0 in inference unless
the flush policy says otherwise).

Feed messages are deleted once all their rows were yielded and the consumer came back for
the next batch (ack after use); until then a :class:`~serverless_tf.input.feed.VisibilityKeeper`
keeps them hidden, however long that takes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..protocol.tfrecord import unframe_records
from .feed import MAX_WAIT_SECONDS, Deadline, EndOfData, FeedError, FeedIdleError, FeedPosition, FeedQueue, RowsMessage, Stop, VisibilityKeeper

# While a partial batch waits for its flush deadline, poll this often (SQS long polls are whole seconds).
SHORT_POLL_SECONDS = 0.05


@dataclass
class _Held:
    receipt_handle: str
    unyielded: int


@dataclass
class LiveBatches:
    """An iterable of parsed batches from a feed queue, with the ``__row_id`` of the last batch.

    Example:
        >>> for batch in LiveBatches(queue, parse, 32, 500, bounded=True, idle_timeout_s=120):  # doctest: +SKIP
        ...     print(batch["__row_id"])
    """

    queue: FeedQueue
    parse: Callable[[list[bytes]], dict[str, Any]]
    batch_size: int
    flush_after_ms: int
    bounded: bool
    idle_timeout_s: float
    should_stop: Callable[[], bool] = lambda: False
    clock: Callable[[], float] = time.monotonic
    on_batch: Optional[Callable[[int], None]] = None
    position: FeedPosition = field(default_factory=FeedPosition)
    rows_yielded: int = 0
    keep_every_seconds: float = 20.0
    _started: bool = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._started:
            raise FeedError(
                f"the live dataset of {self.queue.member} can be iterated once (its rows are deleted from {self.queue.url} "
                "as they are used); loop over ctx.dataset() a single time"
            )
        self._started = True
        return self._kept_batches()

    def _kept_batches(self) -> Iterator[dict[str, Any]]:
        self.keeper = VisibilityKeeper(self.queue, every_seconds=self.keep_every_seconds).start()
        try:
            yield from self._batches()
        finally:
            self.keeper.stop()

    def _delete(self, receipt_handles: list[str]) -> None:
        self.queue.delete(receipt_handles)
        self.keeper.release(receipt_handles)

    def _batches(self) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        held: dict[str, _Held] = {}
        pending: list[tuple[bytes, str]] = []  # (serialized example, feedId)
        idle = Deadline(self.idle_timeout_s, self.clock)
        last_row_at = self.clock()
        stopped = False
        markers: list[str] = []  # end-of-data / stop: deleted only once everything before them was used

        def emit(n: int) -> Iterator[dict[str, Any]]:
            nonlocal pending
            rows, pending = pending[:n], pending[n:]
            batch = self.parse([r for r, _ in rows])
            self.rows_yielded += len(rows)
            if self.on_batch is not None:
                self.on_batch(len(rows))
            yield batch
            # The consumer is back for more: the rows of this batch were used, ack what is complete.
            done: list[str] = []
            for _, feed_id in rows:
                h = held[feed_id]
                h.unyielded -= 1
                if h.unyielded == 0:
                    done.append(h.receipt_handle)
                    del held[feed_id]
            self._delete(done)

        while True:
            while len(pending) >= self.batch_size:
                yield from emit(self.batch_size)
            eod = self.position.end_of_data
            complete = stopped or (eod is not None and (self.position.messages, self.position.rows) == (eod.messages, eod.rows))
            if complete:
                while pending:
                    yield from emit(self.batch_size)
                self._delete([h.receipt_handle for h in held.values()] + markers)
                return
            if eod is not None and (self.position.messages > eod.messages or self.position.rows > eod.rows):
                raise FeedError(f"{self.queue.member} received more than end-of-data announced on {self.queue.url}: {self.position.describe()}")
            if pending and (self.clock() - last_row_at) * 1000 >= self.flush_after_ms:
                yield from emit(len(pending))
                continue
            if pending:
                wait = max(0.0, self.flush_after_ms / 1000 - (self.clock() - last_row_at))
            else:
                wait = min(MAX_WAIT_SECONDS, max(0.0, idle.remaining()))
            if self.bounded and idle.remaining() <= 0:
                raise FeedIdleError(
                    f"{self.queue.member} received nothing on its feed queue {self.queue.url} for {self.idle_timeout_s:.0f} s; "
                    f"position: {self.position.describe()}. Check the feed of job {self.queue.job_id} "
                    "(the deadline is 12 leases of the job's leaseMs)"
                )
            if not self.bounded and idle.remaining() <= 0:
                if self.should_stop():
                    stopped = True
                    continue
                idle.touch()
            received = self.queue.receive(wait if wait >= 1 else 0)
            if not received:
                if 0 < wait < 1:
                    time.sleep(min(wait, SHORT_POLL_SECONDS))
                continue
            idle.touch()
            duplicates: list[str] = []
            for r in received:
                body = r.body
                if isinstance(body, RowsMessage):
                    if body.feed_id in seen:
                        if body.feed_id in held:
                            # the newest handle is the one SQS honours
                            self.keeper.release([held[body.feed_id].receipt_handle])
                            self.keeper.hold([r.receipt_handle])
                            held[body.feed_id].receipt_handle = r.receipt_handle
                        else:
                            duplicates.append(r.receipt_handle)
                        continue
                    frames = unframe_records(body.data)
                    if len(frames) != body.count:
                        raise FeedError(f"feed message {body.feed_id} says count={body.count} but holds {len(frames)} TFRecord frames")
                    seen.add(body.feed_id)
                    if frames:
                        held[body.feed_id] = _Held(r.receipt_handle, len(frames))
                        self.keeper.hold([r.receipt_handle])
                        pending.extend((f, body.feed_id) for f in frames)
                    else:
                        duplicates.append(r.receipt_handle)
                    self.position.rows += body.count
                    self.position.messages += 1
                    self.position.last_feed_id = body.feed_id
                    last_row_at = self.clock()
                elif isinstance(body, EndOfData):
                    self.position.end_of_data = body
                    markers.append(r.receipt_handle)
                    self.keeper.hold([r.receipt_handle])
                elif isinstance(body, Stop):
                    if self.bounded:
                        raise FeedError(f"a stop message arrived on the bounded feed {self.queue.url} at {self.position.describe()}; the job was stopped")
                    stopped = True
                    markers.append(r.receipt_handle)
                    self.keeper.hold([r.receipt_handle])
            self.queue.delete(duplicates)
