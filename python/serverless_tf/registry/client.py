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
import os
import re
import time
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional

from botocore.exceptions import ClientError

from ..aws import client
from ..protocol.names import JOB_ID_PATTERN, member_name
from .errors import BarrierTimeoutError, FencedError, MemberConflictError
from .items import (
    MEMBER_ROLES,
    Checkpoint,
    Item,
    Job,
    Lease,
    Member,
    Progress,
    checkpoint_from_item,
    job_from_item,
    member_from_item,
    now_ms,
    num_attr,
    num_value,
    str_attr,
)

DEFAULT_REGISTRY_TABLE = "serverless-tf-registry"
# Tries of a transaction cancelled for a reason other than its condition (conflict, throttling).
TRANSACTION_ATTEMPTS = 5
#: How long items stay after their last write before DynamoDB TTL may delete them (as in TS).
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
CHECKPOINT_STEP_DIGITS = 12
_TABLE_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise ValueError(f"job_id must match {JOB_ID_PATTERN.pattern}. Received: {job_id!r}")
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


def table_name_from_env(env: Mapping[str, str] = os.environ) -> str:
    """The registry table name from ``SERVERLESS_TF_TABLE``, or ``serverless-tf-registry``."""
    name = env.get("SERVERLESS_TF_TABLE") or DEFAULT_REGISTRY_TABLE
    if not _TABLE_NAME.match(name):
        raise ValueError(f"SERVERLESS_TF_TABLE must be a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ . -. Received: {name!r}")
    return name


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
        return num_value(now // 1000 + retention_seconds)

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
        return job_from_item(item) if item else None

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
                ":role": {"S": role}, ":index": num_value(index), ":address": {"S": _check_name("address", address)},
                ":zero": num_value(0), ":one": num_value(1), ":lease": num_value(lease_expires_at), ":now": num_value(now),
                ":active": {"S": "ACTIVE"}, ":pid": num_value(_check_count("pid", pid)), ":exp": self._expires_at(now),
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            holder = member_from_item(result) if result else None
            raise MemberConflictError(
                job_id, role, index,
                holder.epoch if holder else 0, holder.address if holder else "unknown", holder.lease_expires_at if holder else now,
            )
        return Lease(epoch=num_attr(result["Attributes"], "epoch"), lease_expires_at=lease_expires_at)

    def _fenced(self, job_id: str, role: str, index: int, epoch: int, current: Optional[Item], now: Optional[int] = None) -> FencedError:
        m = member_from_item(current) if current else None
        lapsed = m.lease_expires_at if m and now is not None and m.epoch == epoch and m.status == "ACTIVE" and m.lease_expires_at < now else None
        return FencedError(job_id, role, index, epoch, m.epoch if m else None, m.status if m else None, lapsed)

    def heartbeat(self, job_id: str, role: str, index: int, epoch: int, lease_ms: int, progress: Optional[Progress] = None) -> int:
        """Extends the lease of the member holding ``epoch``; returns the new ``leaseExpiresAt``.

        Raises:
            FencedError: the epoch moved on, or the member is no longer ACTIVE.
        """
        now = self._now()
        lease_expires_at = now + _check_count("lease_ms", lease_ms, 1)
        names = {"#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt", "#hb": "heartbeatAt", "#expiresAt": "expiresAt"}
        values: Item = {
            ":epoch": num_value(epoch), ":active": {"S": "ACTIVE"}, ":lease": num_value(lease_expires_at), ":now": num_value(now), ":exp": self._expires_at(now),
        }
        update = "SET #lease = :lease, #hb = :now, #expiresAt = :exp"
        if progress is not None:
            update += ", #progress = :progress"
            names["#progress"] = "progress"
            values[":progress"] = {"M": {"step": num_value(progress.step), "rowsConsumed": num_value(progress.rows_consumed),
                                         **({"lastEpoch": {"S": progress.last_epoch}} if progress.last_epoch else {})}}
        # A lapsed lease cannot be renewed: a process paused past it may have been replaced.
        self._update_held_member(job_id, role, index, epoch, update, "#epoch = :epoch AND #status = :active AND #lease >= :now", names, values, now)
        return lease_expires_at

    def mark_member(self, job_id: str, role: str, index: int, epoch: int, status: Literal["DONE", "FAILED"], error: Optional[str] = None) -> None:
        """Records that the member holding ``epoch`` is DONE or FAILED. Repeating the same status is accepted.

        Raises:
            FencedError: the epoch moved on, or the member already left ACTIVE with another status.
        """
        if status not in ("DONE", "FAILED"):
            raise ValueError(f"status must be DONE or FAILED. Received: {status!r}")
        names = {"#epoch": "epoch", "#status": "status", "#hb": "heartbeatAt"}
        values: Item = {":epoch": num_value(epoch), ":active": {"S": "ACTIVE"}, ":status": {"S": status}, ":now": num_value(self._now())}
        update = "SET #status = :status, #hb = :now"
        if error is not None:
            update += ", #error = :error"
            names["#error"] = "error"
            values[":error"] = {"S": error}
        self._update_held_member(job_id, role, index, epoch, update, "#epoch = :epoch AND (#status = :active OR #status = :status)", names, values)

    def _update_held_member(self, job_id: str, role: str, index: int, epoch: int, update: str, condition: str,
                            names: Dict[str, str], values: Item, now: Optional[int] = None) -> None:
        """Updates the member item of the holder of ``epoch`` under ``condition``.

        Raises:
            FencedError: the condition refused the update (built from the item that refused it).
        """
        key = self._key(job_id, self._member_sk(role, index))
        ok, result = self._conditional(key, lambda: self._ddb.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
        if not ok:
            raise self._fenced(job_id, role, index, epoch, result, now)

    def members(self, job_id: str) -> List[Member]:
        """Every member of the job, ordered by role then index.

        A registration creates its item with one UpdateItem, atomic in DynamoDB; moto applies the
        SET clauses one by one, so a concurrent read there can see a key without its attributes.
        Such a read is repeated (briefly); an item still incomplete after that is a real error.
        """
        for attempt in range(20):
            items = self._query(job_id, "member#")
            if all("role" in i and "status" in i for i in items) or attempt == 19:
                return sorted((member_from_item(i) for i in items), key=lambda m: (m.role, m.index))
            time.sleep(0.01)
        raise AssertionError("unreachable")

    # -- barriers -------------------------------------------------------------------------------

    def released_barrier(self, job_id: str, name: str) -> Optional[Dict[str, List[str]]]:
        """The cluster spec of barrier ``name`` if it was released, else ``None`` (no waiting)."""
        existing = self._get_item(self._key(job_id, f"barrier#{_check_name('name', name)}"))
        return json.loads(str_attr(existing, "clusterSpec")) if existing else None

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
                return json.loads(str_attr(existing, "clusterSpec"))
            now = self._now()
            by_slot = {member_name(m.role, m.index): m for m in self.members(job_id)}
            missing: List[str] = []
            cluster: Dict[str, List[str]] = {"worker": [], "ps": [], **({"chief": []} if expected.get("chief") else {})}
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
                    "releasedAt": num_value(now),
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
                    return json.loads(str_attr(current, "clusterSpec"))
            if time.monotonic() >= deadline:
                raise BarrierTimeoutError(job_id, name, missing, timeout_ms)
            time.sleep(min(poll_ms / 1000, max(0.001, deadline - time.monotonic())))

    # -- spools (parameter-server training) ------------------------------------------------------

    def record_spool(self, job_id: str, attempt: int, member: str, path: str, rows: int, steps: int) -> None:
        """Tells the chief where a worker's spooled feed is on the worker's own disk: ``spool#a<attempt>#<member>``.

        Under parameter-server training the chief builds each worker's dataset, which runs on that
        worker and reads the file there. The attempt is in the key, so a restarted set never reads a
        path of the process it replaced.
        """
        now = self._now()
        self._ddb.put_item(TableName=self.table_name, Item={
            **self._key(job_id, f"spool#a{_check_count('attempt', attempt)}#{_check_name('member', member)}"),
            "path": {"S": path}, "rows": num_value(_check_count("rows", rows)), "steps": num_value(_check_count("steps", steps)),
            "recordedAt": num_value(now), "expiresAt": self._expires_at(now),
        })

    def spools(self, job_id: str, attempt: int) -> Dict[str, Dict[str, Any]]:
        """The spools recorded for ``attempt``, by member: ``{"worker-0": {"path", "rows", "steps"}}``."""
        prefix = f"spool#a{_check_count('attempt', attempt)}#"
        return {
            str_attr(i, "sk")[len(prefix):]: {"path": str_attr(i, "path"), "rows": int(i["rows"]["N"]), "steps": int(i["steps"]["N"])}
            for i in self._query(job_id, prefix)
        }

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
            "step": num_value(step),
            "uri": {"S": _check_name("uri", uri)},
            "feedPosition": num_value(_check_count("feed_position", feed_position)),
            "member": {"S": member_name(_check_role(role), _check_count("index", index))},
            "createdAt": num_value(now),
            "expiresAt": self._expires_at(now),
        }
        member_key = self._key(job_id, self._member_sk(role, index))
        transaction = [
            {"ConditionCheck": {
                "TableName": self.table_name,
                "Key": member_key,
                "ConditionExpression": "#epoch = :epoch AND #status = :active AND #lease >= :now",
                "ExpressionAttributeNames": {"#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt"},
                "ExpressionAttributeValues": {":epoch": num_value(epoch), ":active": {"S": "ACTIVE"}, ":now": num_value(now)},
            }},
            {"Put": {"TableName": self.table_name, "Item": item}},
        ]
        attempt = 0
        while True:
            try:
                # botocore keeps one ClientRequestToken across its own retries, so a retry after a
                # lost response is answered with the first outcome instead of running twice.
                self._ddb.transact_write_items(TransactItems=transaction)
                return checkpoint_from_item(item)
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
        return checkpoint_from_item(items[0]) if items else None
