"""Registry writes only the tests need: the coordinator's side (TypeScript in the product), written
here so the Python suite can make and move jobs the way src/registry/ does.

- :func:`ensure_registry_table`: the registry table, as ``REGISTRY_TABLE`` in src/registry/table.ts.
- :func:`put_job`: a job item as the TS coordinator writes it.
- :func:`transition_job`: a conditional job state change, with :class:`JobStateError` / :class:`JobNotFoundError`.
- :func:`unreachable_registry`: a registry whose DynamoDB nothing answers, for a lease that cannot be renewed.
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any, Optional, Sequence

from botocore.exceptions import ClientError

from serverless_tf.aws import client
from serverless_tf.registry import Job, Registry, RegistryError, now_ms, table_name_from_env
from serverless_tf.registry.items import Item, job_from_item, num_value, str_attr

def unreachable_registry(table: str, timeout_s: float = 0.5) -> Registry:
    """A registry of ``table`` through a real client of a local port nothing listens on: every call fails fast."""
    import boto3
    from botocore.config import Config

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    return Registry(table, boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                                        aws_access_key_id="x", aws_secret_access_key="x",
                                        config=Config(retries={"max_attempts": 1}, connect_timeout=timeout_s, read_timeout=timeout_s)))


JOB_STATES = ("CREATED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED")


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


def put_job(table: str, job_id: str, state: str = "CREATED") -> None:
    """A job item as the TS coordinator writes it (docs/protocol.md)."""
    client("dynamodb").put_item(TableName=table, Item={
        "pk": {"S": f"job#{job_id}"}, "sk": {"S": "job"}, "state": {"S": state}, "mode": {"S": "train"},
        "spec": {"S": json.dumps({"version": 1, "jobId": job_id, "cluster": {"worker": 1, "ps": 0}})},
        "rev": {"N": "1"}, "createdAt": {"N": str(now_ms())}, "updatedAt": {"N": str(now_ms())},
    })


def transition_job(registry: Registry, job_id: str, from_states: Sequence[str], to: str, error: Optional[str] = None, model_uri: Optional[str] = None) -> Job:
    """Moves the job to ``to`` if its state is one of ``from_states``, adding 1 to ``rev`` (the coordinator's write, src/registry/registry.ts).

    Raises:
        JobStateError: the job is in another state.
        JobNotFoundError: there is no such job.
    """
    if not from_states:
        raise ValueError("from_states must name at least one job state. Received: []")
    for s in (*from_states, to):
        if s not in JOB_STATES:
            raise ValueError(f"job state must be one of {JOB_STATES}. Received: {s!r}")
    key = registry._key(job_id, "job")
    names = {"#state": "state", "#rev": "rev", "#updatedAt": "updatedAt"}
    values: Item = {":to": {"S": to}, ":one": num_value(1), ":now": num_value(registry._now())}
    values.update({f":from{i}": {"S": s} for i, s in enumerate(from_states)})
    sets = ["#state = :to", "#rev = #rev + :one", "#updatedAt = :now"]
    for attr, value in (("error", error), ("modelUri", model_uri)):
        if value is not None:
            sets.append(f"#{attr} = :{attr}")
            names[f"#{attr}"] = attr
            values[f":{attr}"] = {"S": value}
    ok, result = registry._conditional(key, lambda: registry._ddb.update_item(
        TableName=registry.table_name,
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
        if str_attr(result, "state") == to and same_patch:
            return job_from_item(result)
        raise JobStateError(job_id, from_states, str_attr(result, "state"), to)
    return job_from_item(result["Attributes"])
