"""Names shared by the registry, the spec and the feed: job ids and member names (as src/protocol/names.ts)."""
from __future__ import annotations

import re

JOB_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
#: A Secrets Manager secret's full ARN under ``serverless-tf/`` (``SECRET_ARN_PATTERN`` in src/protocol/names.ts).
SECRET_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:serverless-tf/[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")


def member_name(role: str, index: int) -> str:
    """``worker-0``: the key of a member in cluster specs, barrier epochs, feed queues and spool keys."""
    return f"{role}-{index}"
