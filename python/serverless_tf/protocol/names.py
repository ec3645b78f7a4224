"""Names shared by the registry, the spec and the feed: job ids and member names (as src/protocol/names.ts)."""
from __future__ import annotations

import re

JOB_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")


def member_name(role: str, index: int) -> str:
    """``worker-0``: the key of a member in cluster specs, barrier epochs, feed queues and spool keys."""
    return f"{role}-{index}"
