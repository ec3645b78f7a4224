"""Registry items (docs/protocol.md "Registry items") and the records the client reads them into."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

from .errors import RegistryItemError

FINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
#: The states in which a member stops working for the job: STOPPING or a final state.
JOB_ENDING_STATES = ("STOPPING", *FINAL_JOB_STATES)
#: As ROLES in src/protocol/names.ts: the chief exists in parameter-server training only.
MEMBER_ROLES = ("worker", "ps", "chief")

JobState = Literal["CREATED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED"]
Role = Literal["worker", "ps", "chief"]
MemberStatus = Literal["ACTIVE", "DONE", "FAILED"]
Item = Dict[str, Dict[str, Any]]


def now_ms() -> int:
    """Epoch milliseconds, the unit of every time in the registry."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Job:
    job_id: str
    state: str
    mode: str
    spec: Dict[str, Any]
    rev: int
    created_at: int
    updated_at: int
    error: Optional[str] = None
    model_uri: Optional[str] = None


@dataclass(frozen=True)
class Progress:
    step: int
    rows_consumed: int
    #: The last epoch's ``STF_PROGRESS`` values as JSON text: how a runtime that reads no worker's stdout (a deployed stack) reports epochs.
    last_epoch: Optional[str] = None


@dataclass(frozen=True)
class Lease:
    epoch: int
    lease_expires_at: int


@dataclass(frozen=True)
class Member:
    job_id: str
    role: str
    index: int
    address: str
    epoch: int
    lease_expires_at: int
    heartbeat_at: int
    status: str
    pid: int
    progress: Optional[Progress] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    step: int
    uri: str
    feed_position: int
    member: str
    created_at: int


def _where(item: Item) -> str:
    return f"{item.get('pk', {}).get('S')}/{item.get('sk', {}).get('S')}"


def str_attr(item: Item, name: str) -> str:
    v = item.get(name, {}).get("S")
    if v is None:
        raise RegistryItemError(_where(item), name, "a string (S)", item.get(name))
    return v


def num_attr(item: Item, name: str) -> int:
    v = item.get(name, {}).get("N")
    if v is None:
        raise RegistryItemError(_where(item), name, "a number (N)", item.get(name))
    return int(v)


def opt_str_attr(item: Item, name: str) -> Optional[str]:
    return str_attr(item, name) if name in item else None


def _job_id_of(item: Item) -> str:
    return str_attr(item, "pk")[len("job#"):]


def job_from_item(item: Item) -> Job:
    return Job(
        job_id=_job_id_of(item),
        state=str_attr(item, "state"),
        mode=str_attr(item, "mode"),
        spec=json.loads(str_attr(item, "spec")),
        rev=num_attr(item, "rev"),
        created_at=num_attr(item, "createdAt"),
        updated_at=num_attr(item, "updatedAt"),
        error=opt_str_attr(item, "error"),
        model_uri=opt_str_attr(item, "modelUri"),
    )


def member_from_item(item: Item) -> Member:
    p = item.get("progress", {}).get("M")
    return Member(
        job_id=_job_id_of(item),
        role=str_attr(item, "role"),
        index=num_attr(item, "index"),
        address=str_attr(item, "address"),
        epoch=num_attr(item, "epoch"),
        lease_expires_at=num_attr(item, "leaseExpiresAt"),
        heartbeat_at=num_attr(item, "heartbeatAt"),
        status=str_attr(item, "status"),
        pid=num_attr(item, "pid"),
        progress=Progress(num_attr(p, "step"), num_attr(p, "rowsConsumed")) if p is not None else None,
        error=opt_str_attr(item, "error"),
    )


def checkpoint_from_item(item: Item) -> Checkpoint:
    return Checkpoint(
        job_id=_job_id_of(item),
        step=num_attr(item, "step"),
        uri=str_attr(item, "uri"),
        feed_position=num_attr(item, "feedPosition"),
        member=str_attr(item, "member"),
        created_at=num_attr(item, "createdAt"),
    )


def num_value(v: int) -> Dict[str, str]:
    """A DynamoDB number attribute value."""
    return {"N": str(v)}
