"""The registry client of the worker: the Python side of src/registry/registry.ts.

Items follow docs/protocol.md ("Registry items"): one DynamoDB table, ``pk = "job#<jobId>"``,
conditional writes everywhere. A refused condition becomes a typed error built from the item
that refused it (``ReturnValuesOnConditionCheckFailure=ALL_OLD``, else a consistent read).

Leases are judged by comparing ``leaseExpiresAt`` with the injected clock, never by TTL:
DynamoDB deletes expired items only eventually and moto never does.

Example:
    >>> registry = Registry(table_name_from_env())  # doctest: +SKIP
    >>> lease = registry.register("fit-3f9a2c1b", "worker", 0, "10.0.0.5:2222", os.getpid(), 10_000)  # doctest: +SKIP
    >>> cluster = registry.await_barrier("fit-3f9a2c1b", "start", {"worker": 2, "ps": 0}, timeout_ms=60_000)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence

from botocore.exceptions import ClientError

from .aws import client

log = logging.getLogger(__name__)

DEFAULT_REGISTRY_TABLE = "serverless-tf-registry"
# Tries of a transaction cancelled for a reason other than its condition (conflict, throttling).
TRANSACTION_ATTEMPTS = 5
#: How long items stay after their last write before DynamoDB TTL may delete them (as in TS).
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
JOB_STATES = ("CREATED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED")
FINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
MEMBER_ROLES = ("worker", "ps")
CHECKPOINT_STEP_DIGITS = 12
_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
_TABLE_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")

JobState = Literal["CREATED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED"]
Role = Literal["worker", "ps"]
MemberStatus = Literal["ACTIVE", "DONE", "FAILED"]
Item = Dict[str, Dict[str, Any]]


def now_ms() -> int:
    """Epoch milliseconds, the unit of every time in the registry."""
    return time.time_ns() // 1_000_000


def member_name(role: str, index: int) -> str:
    """``worker-0``: the key of a member in cluster specs, barrier epochs and per-member counters."""
    return f"{role}-{index}"


# ---------------------------------------------------------------------------------------------
# Errors (the same family as src/registry/errors.ts)


class RegistryError(Exception):
    """Base of the registry errors."""


class JobNotFoundError(RegistryError):
    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"job {job_id} is not in the registry. Check the job id and the table name (SERVERLESS_TF_TABLE).")


class JobStateError(RegistryError):
    def __init__(self, job_id: str, expected: Sequence[str], actual: str, attempted: str):
        self.job_id, self.expected, self.actual, self.attempted = job_id, tuple(expected), actual, attempted
        super().__init__(
            f"job {job_id} cannot move to {attempted}: it is {actual}, expected one of {', '.join(expected)}. "
            "Another process changed it first; read the job again (get_job) and decide from its current state."
        )


class MemberConflictError(RegistryError):
    def __init__(self, job_id: str, role: str, index: int, holder_epoch: int, holder_address: str, lease_expires_at: int):
        self.job_id, self.role, self.index = job_id, role, index
        self.holder_epoch, self.holder_address, self.lease_expires_at = holder_epoch, holder_address, lease_expires_at
        super().__init__(
            f"{role}-{index} of job {job_id} is held by {holder_address} (epoch {holder_epoch}) whose lease runs until "
            f"{lease_expires_at} ms. Stop the other process, or retry after the lease expires."
        )


class FencedError(RegistryError):
    def __init__(self, job_id: str, role: str, index: int, epoch: int, current_epoch: Optional[int], current_status: Optional[str], lease_expired_at: Optional[int] = None):
        self.job_id, self.role, self.index, self.epoch = job_id, role, index, epoch
        self.current_epoch, self.current_status, self.lease_expired_at = current_epoch, current_status, lease_expired_at
        if lease_expired_at is not None:
            super().__init__(
                f"{role}-{index} of job {job_id} was fenced: its lease (epoch {epoch}) lapsed at {lease_expired_at} ms, so the process was "
                "paused or cut off longer than the lease; it may have been replaced and must stop working for the job and exit."
            )
            return
        where = "gone" if current_epoch is None else f"at epoch {current_epoch}, status {current_status}"
        why = ("Its member left ACTIVE (the watch restarted the member set, or it already finished)" if current_epoch == epoch
               else "Another registration took over")
        super().__init__(
            f"{role}-{index} of job {job_id} was fenced: this process holds epoch {epoch} but the slot is {where}. "
            f"{why}; this process must stop working for the job and exit."
        )


class BarrierTimeoutError(RegistryError):
    def __init__(self, job_id: str, barrier: str, missing: Sequence[str], timeout_ms: int):
        self.job_id, self.barrier, self.missing, self.timeout_ms = job_id, barrier, list(missing), timeout_ms
        super().__init__(
            f"barrier {barrier} of job {job_id} was not released within {timeout_ms} ms; missing: {', '.join(missing)}. "
            "Check that those members were launched and can reach the registry, or raise the timeout."
        )


class RegistryItemError(RegistryError):
    def __init__(self, key: str, attribute: str, expected: str, received: Any):
        self.key, self.attribute = key, attribute
        super().__init__(f"registry item {key} has a bad attribute {attribute}: expected {expected}. Received: {received!r}. Fix or delete the item.")


# ---------------------------------------------------------------------------------------------
# Records


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


def _s(item: Item, name: str) -> str:
    v = item.get(name, {}).get("S")
    if v is None:
        raise RegistryItemError(_where(item), name, "a string (S)", item.get(name))
    return v


def _n(item: Item, name: str) -> int:
    v = item.get(name, {}).get("N")
    if v is None:
        raise RegistryItemError(_where(item), name, "a number (N)", item.get(name))
    return int(v)


def _opt_s(item: Item, name: str) -> Optional[str]:
    return _s(item, name) if name in item else None


def _job_id(item: Item) -> str:
    return _s(item, "pk")[len("job#"):]


def _to_job(item: Item) -> Job:
    return Job(
        job_id=_job_id(item),
        state=_s(item, "state"),
        mode=_s(item, "mode"),
        spec=json.loads(_s(item, "spec")),
        rev=_n(item, "rev"),
        created_at=_n(item, "createdAt"),
        updated_at=_n(item, "updatedAt"),
        error=_opt_s(item, "error"),
        model_uri=_opt_s(item, "modelUri"),
    )


def _to_member(item: Item) -> Member:
    p = item.get("progress", {}).get("M")
    return Member(
        job_id=_job_id(item),
        role=_s(item, "role"),
        index=_n(item, "index"),
        address=_s(item, "address"),
        epoch=_n(item, "epoch"),
        lease_expires_at=_n(item, "leaseExpiresAt"),
        heartbeat_at=_n(item, "heartbeatAt"),
        status=_s(item, "status"),
        pid=_n(item, "pid"),
        progress=Progress(_n(p, "step"), _n(p, "rowsConsumed")) if p is not None else None,
        error=_opt_s(item, "error"),
    )


def _to_checkpoint(item: Item) -> Checkpoint:
    return Checkpoint(
        job_id=_job_id(item),
        step=_n(item, "step"),
        uri=_s(item, "uri"),
        feed_position=_n(item, "feedPosition"),
        member=_s(item, "member"),
        created_at=_n(item, "createdAt"),
    )


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ValueError(f"job_id must match {_JOB_ID.pattern}. Received: {job_id!r}")
    return job_id


def _check_count(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {value!r}")
    return value


def _check_role(role: str) -> str:
    if role not in MEMBER_ROLES:
        raise ValueError(f"role must be one of {MEMBER_ROLES}. Received: {role!r}")
    return role


def _check_name(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or "#" in value:
        raise ValueError(f"{name} must be a non-empty string without '#'. Received: {value!r}")
    return value


def _n_value(v: int) -> Dict[str, str]:
    return {"N": str(v)}


def table_name_from_env(env: Mapping[str, str] = os.environ) -> str:
    """The registry table name from ``SERVERLESS_TF_TABLE``, or ``serverless-tf-registry``."""
    name = env.get("SERVERLESS_TF_TABLE") or DEFAULT_REGISTRY_TABLE
    if not _TABLE_NAME.match(name):
        raise ValueError(f"SERVERLESS_TF_TABLE must be a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ . -. Received: {name!r}")
    return name


def ensure_registry_table(table_name: Optional[str] = None, dynamodb_client: Any = None, timeout_s: float = 60.0) -> str:
    """Creates the registry table if missing (keys pk/sk, on demand, TTL on ``expiresAt``) and waits until ACTIVE.

    The same definition as ``REGISTRY_TABLE`` in src/registry/table.ts. Idempotent and safe to call
    concurrently. Returns the table name.
    """
    name = table_name or table_name_from_env()
    ddb = dynamodb_client or client("dynamodb")

    def status() -> Optional[str]:
        try:
            return ddb.describe_table(TableName=name)["Table"]["TableStatus"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    if status() is None:
        try:
            ddb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":  # another caller created it first
                raise
    deadline = time.monotonic() + timeout_s
    while (current := status()) != "ACTIVE":
        if time.monotonic() > deadline:
            raise RegistryError(f"table {name} is {current or 'missing'}, not ACTIVE, after {timeout_s} s. Check it in the DynamoDB console, or delete it and retry.")
        time.sleep(0.25)

    def ttl_on() -> bool:
        return ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"] in ("ENABLED", "ENABLING")

    if not ttl_on():
        try:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": "expiresAt", "Enabled": True})
        except ClientError:
            if not ttl_on():  # a concurrent caller enabling it first makes DynamoDB answer ValidationException
                raise
    return name


# ---------------------------------------------------------------------------------------------
# The client


class Registry:
    """The registry of one table: what a worker needs (read the job, lease a slot, wait at a barrier, checkpoints).

    Args:
        table_name: the registry table (see :func:`table_name_from_env`).
        dynamodb_client: a boto3 DynamoDB client; default ``serverless_tf.aws.client("dynamodb")``.
        now: epoch-milliseconds clock, injectable so lease expiry is testable without sleeping.

    Thread-safe: boto3 clients are, and the registry keeps no other state.
    """

    def __init__(self, table_name: str, dynamodb_client: Any = None, now: Callable[[], int] = now_ms):
        self.table_name = table_name
        self._ddb = dynamodb_client or client("dynamodb")
        self._now = now

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _key(job_id: str, sk: str) -> Item:
        return {"pk": {"S": f"job#{_check_job_id(job_id)}"}, "sk": {"S": sk}}

    @staticmethod
    def _member_sk(role: str, index: int) -> str:
        return f"member#{_check_role(role)}#{_check_count('index', index)}"

    def _expires_at(self, now: int, retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> Dict[str, str]:
        return _n_value(now // 1000 + retention_seconds)

    def _get_item(self, key: Item) -> Optional[Item]:
        return self._ddb.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")

    def _conditional(self, key: Item, write: Callable[[], Any]) -> tuple[bool, Any]:
        """Runs a conditional write: ``(True, response)``, or ``(False, item that refused it or None)``."""
        try:
            return True, write()
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False, e.response.get("Item") or self._get_item(key)

    def _query(self, job_id: str, prefix: str) -> List[Item]:
        items: List[Item] = []
        kwargs: Dict[str, Any] = dict(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"job#{_check_job_id(job_id)}"}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
        )
        while True:
            page = self._ddb.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- jobs -----------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Optional[Job]:
        """The job, read consistently; None when it is not in the registry."""
        item = self._get_item(self._key(job_id, "job"))
        return _to_job(item) if item else None

    def transition_job(self, job_id: str, from_states: Sequence[str], to: str, error: Optional[str] = None, model_uri: Optional[str] = None) -> Job:
        """Moves the job to ``to`` if its state is one of ``from_states``, adding 1 to ``rev``.

        Raises:
            JobStateError: the job is in another state.
            JobNotFoundError: there is no such job.
        """
        if not from_states:
            raise ValueError("from_states must name at least one job state. Received: []")
        for s in (*from_states, to):
            if s not in JOB_STATES:
                raise ValueError(f"job state must be one of {JOB_STATES}. Received: {s!r}")
        key = self._key(job_id, "job")
        names = {"#state": "state", "#rev": "rev", "#updatedAt": "updatedAt"}
        values: Item = {":to": {"S": to}, ":one": _n_value(1), ":now": _n_value(self._now())}
        values.update({f":from{i}": {"S": s} for i, s in enumerate(from_states)})
        sets = ["#state = :to", "#rev = #rev + :one", "#updatedAt = :now"]
        for attr, value in (("error", error), ("modelUri", model_uri)):
            if value is not None:
                sets.append(f"#{attr} = :{attr}")
                names[f"#{attr}"] = attr
                values[f":{attr}"] = {"S": value}
        ok, result = self._conditional(key, lambda: self._ddb.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"attribute_exists(sk) AND #state IN ({', '.join(f':from{i}' for i in range(len(from_states)))})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            if result is None:
                raise JobNotFoundError(job_id)
            # Already where this call moves it, with the same patch: a retry whose first response was lost.
            same_patch = (error is None or result.get("error", {}).get("S") == error) and (model_uri is None or result.get("modelUri", {}).get("S") == model_uri)
            if _s(result, "state") == to and same_patch:
                return _to_job(result)
            raise JobStateError(job_id, from_states, _s(result, "state"), to)
        return _to_job(result["Attributes"])

    # -- members --------------------------------------------------------------------------------

    def register(self, job_id: str, role: str, index: int, address: str, pid: int, lease_ms: int) -> Lease:
        """Takes the slot ``role-index`` for ``lease_ms``; the epoch becomes the previous one + 1 (1 for a new slot).

        Allowed when the slot is empty, its lease has expired, its member is not ACTIVE, or it is this
        same process (``address`` and ``pid`` match, so a retried request that already succeeded is not refused).

        Raises:
            MemberConflictError: a live member holds the slot.
        """
        now = self._now()
        key = self._key(job_id, self._member_sk(role, index))
        lease_expires_at = now + _check_count("lease_ms", lease_ms, 1)
        ok, result = self._conditional(key, lambda: self._ddb.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression=(
                "SET #role = :role, #index = :index, #address = :address, #epoch = if_not_exists(#epoch, :zero) + :one, "
                "#lease = :lease, #hb = :now, #status = :active, #pid = :pid, #expiresAt = :exp REMOVE #progress, #error"
            ),
            ConditionExpression="attribute_not_exists(sk) OR #lease < :now OR #status <> :active OR (#address = :address AND #pid = :pid)",
            ExpressionAttributeNames={
                "#role": "role", "#index": "index", "#address": "address", "#epoch": "epoch", "#lease": "leaseExpiresAt",
                "#hb": "heartbeatAt", "#status": "status", "#pid": "pid", "#expiresAt": "expiresAt", "#progress": "progress", "#error": "error",
            },
            ExpressionAttributeValues={
                ":role": {"S": role}, ":index": _n_value(index), ":address": {"S": _check_name("address", address)},
                ":zero": _n_value(0), ":one": _n_value(1), ":lease": _n_value(lease_expires_at), ":now": _n_value(now),
                ":active": {"S": "ACTIVE"}, ":pid": _n_value(_check_count("pid", pid)), ":exp": self._expires_at(now),
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            holder = _to_member(result) if result else None
            raise MemberConflictError(
                job_id, role, index,
                holder.epoch if holder else 0, holder.address if holder else "unknown", holder.lease_expires_at if holder else now,
            )
        return Lease(epoch=_n(result["Attributes"], "epoch"), lease_expires_at=lease_expires_at)

    def _fenced(self, job_id: str, role: str, index: int, epoch: int, current: Optional[Item], now: Optional[int] = None) -> FencedError:
        m = _to_member(current) if current else None
        lapsed = m.lease_expires_at if m and now is not None and m.epoch == epoch and m.status == "ACTIVE" and m.lease_expires_at < now else None
        return FencedError(job_id, role, index, epoch, m.epoch if m else None, m.status if m else None, lapsed)

    def heartbeat(self, job_id: str, role: str, index: int, epoch: int, lease_ms: int, progress: Optional[Progress] = None) -> int:
        """Extends the lease of the member holding ``epoch``; returns the new ``leaseExpiresAt``.

        Raises:
            FencedError: the epoch moved on, or the member is no longer ACTIVE.
        """
        now = self._now()
        key = self._key(job_id, self._member_sk(role, index))
        lease_expires_at = now + _check_count("lease_ms", lease_ms, 1)
        names = {"#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt", "#hb": "heartbeatAt", "#expiresAt": "expiresAt"}
        values: Item = {
            ":epoch": _n_value(epoch), ":active": {"S": "ACTIVE"}, ":lease": _n_value(lease_expires_at), ":now": _n_value(now), ":exp": self._expires_at(now),
        }
        update = "SET #lease = :lease, #hb = :now, #expiresAt = :exp"
        if progress is not None:
            update += ", #progress = :progress"
            names["#progress"] = "progress"
            values[":progress"] = {"M": {"step": _n_value(progress.step), "rowsConsumed": _n_value(progress.rows_consumed)}}
        ok, result = self._conditional(key, lambda: self._ddb.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression=update,
            # A lapsed lease cannot be renewed: a process paused past it may have been replaced.
            ConditionExpression="#epoch = :epoch AND #status = :active AND #lease >= :now",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            raise self._fenced(job_id, role, index, epoch, result, now)
        return lease_expires_at

    def mark_member(self, job_id: str, role: str, index: int, epoch: int, status: Literal["DONE", "FAILED"], error: Optional[str] = None) -> None:
        """Records that the member holding ``epoch`` is DONE or FAILED. Repeating the same status is accepted.

        Raises:
            FencedError: the epoch moved on, or the member already left ACTIVE with another status.
        """
        if status not in ("DONE", "FAILED"):
            raise ValueError(f"status must be DONE or FAILED. Received: {status!r}")
        key = self._key(job_id, self._member_sk(role, index))
        names = {"#epoch": "epoch", "#status": "status", "#hb": "heartbeatAt"}
        values: Item = {":epoch": _n_value(epoch), ":active": {"S": "ACTIVE"}, ":status": {"S": status}, ":now": _n_value(self._now())}
        update = "SET #status = :status, #hb = :now"
        if error is not None:
            update += ", #error = :error"
            names["#error"] = "error"
            values[":error"] = {"S": error}
        ok, result = self._conditional(key, lambda: self._ddb.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression=update,
            ConditionExpression="#epoch = :epoch AND (#status = :active OR #status = :status)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            raise self._fenced(job_id, role, index, epoch, result)

    def members(self, job_id: str) -> List[Member]:
        """Every member of the job, ordered by role then index.

        A registration creates its item with one UpdateItem, atomic in DynamoDB; moto applies the
        SET clauses one by one, so a concurrent read there can see a key without its attributes.
        Such a read is repeated (briefly); an item still incomplete after that is a real error.
        """
        for attempt in range(20):
            items = self._query(job_id, "member#")
            if all("role" in i and "status" in i for i in items) or attempt == 19:
                return sorted((_to_member(i) for i in items), key=lambda m: (m.role, m.index))
            time.sleep(0.01)
        raise AssertionError("unreachable")

    # -- barriers -------------------------------------------------------------------------------

    def await_barrier(self, job_id: str, name: str, expected: Mapping[str, int], timeout_ms: int, poll_ms: int = 250) -> Dict[str, List[str]]:
        """Waits until barrier ``name`` is released and returns its cluster spec ``{"worker": [...], "ps": [...]}``.

        When every expected slot (``expected = {"worker": n, "ps": m}``, slots 0..n-1) holds an ACTIVE
        member with a live lease, puts ``barrier#<name>`` with ``attribute_not_exists(sk)``: exactly one
        racing caller (in either language) creates it, the others read it. ``timeout_ms`` is wall time.

        Raises:
            BarrierTimeoutError: naming the members still missing at the deadline.
        """
        key = self._key(job_id, f"barrier#{_check_name('name', name)}")
        deadline = time.monotonic() + _check_count("timeout_ms", timeout_ms) / 1000
        _check_count("poll_ms", poll_ms, 1)
        while True:
            existing = self._get_item(key)
            if existing:
                return json.loads(_s(existing, "clusterSpec"))
            now = self._now()
            by_slot = {member_name(m.role, m.index): m for m in self.members(job_id)}
            missing: List[str] = []
            cluster: Dict[str, List[str]] = {"worker": [], "ps": []}
            epochs: Dict[str, int] = {}
            for role in MEMBER_ROLES:
                for index in range(_check_count(f"expected[{role!r}]", int(expected.get(role, 0)))):
                    slot = member_name(role, index)
                    m = by_slot.get(slot)
                    if m is None:
                        missing.append(f"{slot} (not registered)")
                    elif m.status != "ACTIVE":
                        missing.append(f"{slot} ({m.status})")
                    elif m.lease_expires_at < now:
                        missing.append(f"{slot} (lease expired at {m.lease_expires_at})")
                    else:
                        cluster[role].append(m.address)
                        epochs[slot] = m.epoch
            if not missing:
                item = {
                    **key,
                    "releasedAt": _n_value(now),
                    "clusterSpec": {"S": json.dumps(cluster, separators=(",", ":"))},
                    "epochs": {"S": json.dumps(epochs, separators=(",", ":"))},
                    "expiresAt": self._expires_at(now),
                }
                ok, current = self._conditional(key, lambda: self._ddb.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(sk)", ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ))
                if ok:
                    return cluster
                if current:
                    return json.loads(_s(current, "clusterSpec"))
            if time.monotonic() >= deadline:
                raise BarrierTimeoutError(job_id, name, missing, timeout_ms)
            time.sleep(min(poll_ms / 1000, max(0.001, deadline - time.monotonic())))

    # -- checkpoints ----------------------------------------------------------------------------

    def record_checkpoint(self, job_id: str, step: int, uri: str, feed_position: int, role: str, index: int, epoch: int) -> Checkpoint:
        """Publishes a checkpoint whose files are all uploaded under ``uri``, as ``checkpoint#<step, 12 digits>``.

        One transaction: the checkpoint is written only while the writer still holds its lease
        (``epoch``, ACTIVE, not lapsed), so a fenced worker cannot publish weights over those of
        its replacement. The same step again replaces it (a restarted attempt reaching that step).

        Raises:
            FencedError: the writer's epoch moved on, it left ACTIVE, or its lease lapsed.
        """
        now = self._now()
        sk = f"checkpoint#{_check_count('step', step):0{CHECKPOINT_STEP_DIGITS}d}"
        item = {
            **self._key(job_id, sk),
            "step": _n_value(step),
            "uri": {"S": _check_name("uri", uri)},
            "feedPosition": _n_value(_check_count("feed_position", feed_position)),
            "member": {"S": f"{_check_role(role)}-{_check_count('index', index)}"},
            "createdAt": _n_value(now),
            "expiresAt": self._expires_at(now),
        }
        member_key = self._key(job_id, self._member_sk(role, index))
        transaction = [
            {"ConditionCheck": {
                "TableName": self.table_name,
                "Key": member_key,
                "ConditionExpression": "#epoch = :epoch AND #status = :active AND #lease >= :now",
                "ExpressionAttributeNames": {"#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt"},
                "ExpressionAttributeValues": {":epoch": _n_value(epoch), ":active": {"S": "ACTIVE"}, ":now": _n_value(now)},
            }},
            {"Put": {"TableName": self.table_name, "Item": item}},
        ]
        attempt = 0
        while True:
            try:
                # botocore keeps one ClientRequestToken across its own retries, so a retry after a
                # lost response is answered with the first outcome instead of running twice.
                self._ddb.transact_write_items(TransactItems=transaction)
                return _to_checkpoint(item)
            except ClientError as e:
                reasons = [r.get("Code") for r in e.response.get("CancellationReasons") or []]
                if e.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    raise self._fenced(job_id, role, index, epoch, self._get_item(member_key), now) from None
                # A heartbeat of the same member updating its item at the same moment
                # (TransactionConflict) or a throttled part: nothing was written; try again.
                attempt += 1
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2 ** attempt)

    def latest_checkpoint(self, job_id: str) -> Optional[Checkpoint]:
        """The checkpoint with the highest step, or None."""
        page = self._ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"job#{_check_job_id(job_id)}"}, ":prefix": {"S": "checkpoint#"}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = page.get("Items", [])
        return _to_checkpoint(items[0]) if items else None


# ---------------------------------------------------------------------------------------------
# Keeping a lease


@dataclass(frozen=True)
class LeaseLoss:
    """Why a :class:`LeaseKeeper` stopped on its own: ``fenced`` (another registration took the slot)
    or ``job-ended`` (the job reached a final state or STOPPING)."""

    reason: Literal["fenced", "job-ended"]
    detail: str
    error: Optional[BaseException] = None
    job_state: Optional[str] = None


@dataclass
class LeaseKeeper:
    """A daemon thread that heartbeats a member's lease every ``lease_ms / 3``.

    When the heartbeat is fenced, or the job is found in a final state (SUCCEEDED, FAILED, STOPPED)
    or STOPPING, it records a :class:`LeaseLoss` in ``loss``, calls ``on_loss`` once and stops: the
    worker uses the callback to exit. Other errors (a network blip) are logged and retried at the
    next tick; if the slot was taken meanwhile, that tick is fenced.

    Example:
        >>> keeper = LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, 10_000, on_loss=lambda loss: os._exit(3))  # doctest: +SKIP
        >>> keeper.start()  # doctest: +SKIP
        >>> keeper.stop()   # doctest: +SKIP
    """

    registry: Registry
    job_id: str
    role: str
    index: int
    epoch: int
    lease_ms: int
    on_loss: Callable[[LeaseLoss], None] = lambda loss: None
    #: Called at every tick; its value is written as the member's ``progress``.
    progress: Optional[Callable[[], Optional[Progress]]] = None
    loss: Optional[LeaseLoss] = field(default=None, init=False)
    last_error: Optional[BaseException] = field(default=None, init=False)
    heartbeats: int = field(default=0, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: Optional[threading.Thread] = field(default=None, init=False, repr=False)

    @property
    def interval_s(self) -> float:
        return self.lease_ms / 3 / 1000

    def start(self) -> "LeaseKeeper":
        if self._thread is not None:
            raise RuntimeError("LeaseKeeper.start() was already called; make a new keeper for a new lease.")
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.job_id}-{self.role}-{self.index}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: Optional[float] = None) -> None:
        """Stops heartbeating (the lease then runs out on its own) and waits for the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def wait(self, timeout_s: Optional[float] = None) -> Optional[LeaseLoss]:
        """Waits until the keeper stops on its own or is stopped; returns the loss, if any."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.loss

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "LeaseKeeper":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _lose(self, loss: LeaseLoss) -> None:
        self.loss = loss
        self._stop.set()
        try:
            self.on_loss(loss)
        except Exception:  # the callback's failure must not hide the loss
            log.exception("LeaseKeeper on_loss callback failed for %s-%s of job %s", self.role, self.index, self.job_id)

    def _tick(self) -> None:
        try:
            progress = self.progress() if self.progress else None
            self.registry.heartbeat(self.job_id, self.role, self.index, self.epoch, self.lease_ms, progress)
            self.heartbeats += 1
        except FencedError as e:
            self._lose(LeaseLoss("fenced", str(e), error=e))
            return
        job = self.registry.get_job(self.job_id)
        if job is not None and (job.state in FINAL_JOB_STATES or job.state == "STOPPING"):
            self._lose(LeaseLoss("job-ended", f"job {self.job_id} is {job.state}", job_state=job.state))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except Exception as e:  # retried at the next tick; the lease has two more ticks of slack
                self.last_error = e
                log.warning("heartbeat of %s-%s of job %s failed, retrying: %s", self.role, self.index, self.job_id, e)
