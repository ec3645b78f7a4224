"""A member's input (docs/protocol.md "Feed messages", "Remainder policies").

- :mod:`.feed`: the feed queue: parse, dedupe, receive, acknowledge.
- :mod:`.spool`: bounded training input, spooled to a local file and S3 parts before it is acknowledged.
- :mod:`.live_feed`: live batches as rows arrive (inference, unbounded input).
- :mod:`.remainder`: the remainder policies: the step plan and the exactly-``steps`` dataset over a spool.
"""
