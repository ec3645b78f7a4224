"""The worker runtime end to end: real ``python -m serverless_tf.worker`` processes against the emulator.

Each test builds its job by hand (registry item, bucket, queues, user script), feeds rows the
way shard-feed does (docs/protocol.md "Feed messages") and asserts on exit codes, registry items,
S3 objects, the output queue and the ``STF_TEST`` lines the test scripts print. TensorFlow takes
~4 s to import, so processes are started as few times as possible and in parallel where the
tests are independent.
"""
from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from serverless_tf.aws import client
from serverless_tf.input.remainder import plan_steps
from serverless_tf.protocol.example import decode_example, encode_example
from serverless_tf.protocol.schema import columns_from_json
from serverless_tf.protocol.tfrecord import frame_records, unframe_records
from serverless_tf.registry import Registry

from registry_helpers import ensure_registry_table

ROOT = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("SERVERLESS_TF_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
SCRIPTS = Path(__file__).parent / "scripts"
INPUT_COLUMNS = [{"name": "x", "dtype": "FLOAT32", "shape": {"fixed": 2}}, {"name": "y", "dtype": "FLOAT32", "shape": "scalar"}]
WORKER_DEADLINE_S = 150

pytestmark = pytest.mark.skipif(not os.environ.get("AWS_ENDPOINT_URL"), reason="needs the emulator (run through npm test)")


# ---------------------------------------------------------------------------------------------
# Harness: a job built by hand, its feed, its worker processes


@dataclass
class Env:
    table: str
    bucket: str
    s3: Any
    sqs: Any
    registry: Registry


@dataclass
class Job:
    env: Env
    job_id: str
    spec: dict[str, Any]
    queues: list[str] = field(default_factory=list)
    seq: int = 0

    @property
    def input_columns(self) -> list[Any]:
        cols = self.spec["input"]["columns"]
        extra = [{"name": "__row_id", "dtype": "INT64", "shape": "scalar"}] if self.spec["mode"] == "inference" else []
        return columns_from_json(cols + extra)

    def feed(self, member: str, rows: list[dict[str, Any]], per_message: int, shard: str = "s0") -> list[dict[str, Any]]:
        """Sends ``rows`` as rows messages of ``per_message`` rows; returns the message bodies sent."""
        bodies = []
        for start in range(0, len(rows), per_message):
            chunk = rows[start:start + per_message]
            data = frame_records([encode_example(r, self.input_columns) for r in chunk])
            body = {"v": 1, "kind": "rows", "job": self.job_id, "shard": shard, "seq": self.seq, "member": member,
                    "count": len(chunk), "data": base64.b64encode(data).decode()}
            self.send(member, body)
            bodies.append(body)
            self.seq += 1
        return bodies

    def send(self, member: str, body: dict[str, Any]) -> None:
        attrs = {}
        if body["kind"] == "rows":
            attrs = {"feedId": {"DataType": "String", "StringValue": f"{body['shard']}:{body['seq']}:{member}"}}
        self.env.sqs.send_message(QueueUrl=self.spec["queues"]["feed"][member], MessageBody=json.dumps(body), MessageAttributes=attrs)

    def end_of_data(self, member: str, rows: int, messages: int, steps: int) -> None:
        self.send(member, {"v": 1, "kind": "end-of-data", "job": self.job_id, "member": member, "rows": rows, "messages": messages, "steps": steps})

    def start(self, index: int, tmp: Path) -> "Proc":
        out, err = tmp / f"{self.job_id}-{index}.out", tmp / f"{self.job_id}-{index}.err"
        env = {**os.environ, "SERVERLESS_TF_TABLE": self.env.table, "PYTHONPATH": str(ROOT / "python"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        popen = subprocess.Popen(
            [PYTHON, "-m", "serverless_tf.worker", "--job-id", self.job_id, "--role", "worker", "--index", str(index)],
            stdout=out.open("wb"), stderr=err.open("wb"), env=env, cwd=str(ROOT / "python"),
        )
        return Proc(popen, out, err)

    def member_item(self, index: int) -> Any:
        return next(m for m in self.env.registry.members(self.job_id) if m.role == "worker" and m.index == index)

    def output_messages(self, wait_s: int = 0) -> list[dict[str, Any]]:
        got = self.env.sqs.receive_message(QueueUrl=self.spec["queues"]["output"], MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
        msgs = got.get("Messages", [])
        for m in msgs:
            self.env.sqs.delete_message(QueueUrl=self.spec["queues"]["output"], ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in msgs]


@dataclass
class Proc:
    popen: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout_s: float = WORKER_DEADLINE_S) -> int:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"worker did not exit within {timeout_s} s; stderr tail:\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def facts(self, kind: str) -> dict[str, Any]:
        for line in self.out.read_text().splitlines():
            if line.startswith("STF_TEST "):
                fact = json.loads(line[len("STF_TEST "):])
                if fact["kind"] == kind:
                    return fact
        pytest.fail(f"no STF_TEST {kind} line in the worker's stdout; stderr tail:\n{self.stderr()[-3000:]}")

    def progress_lines(self) -> list[dict[str, Any]]:
        return [json.loads(l[len("STF_PROGRESS "):]) for l in self.out.read_text().splitlines() if l.startswith("STF_PROGRESS ")]


@pytest.fixture(scope="module")
def env():
    name = f"stf-worker-{uuid.uuid4().hex[:8]}"
    s3, sqs = client("s3"), client("sqs")
    ensure_registry_table(name)
    s3.create_bucket(Bucket=name)
    yield Env(name, name, s3, sqs, Registry(name))
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)
    client("dynamodb").delete_table(TableName=name)


def create_job(env: Env, mode: str = "train", workers: int = 1, script: str = "train_tiny.py", entry: str = "train",
               policy: str = "drop", batch_size: int = 3, hyper: Optional[dict[str, Any]] = None, bounded: bool = True,
               after_ms: int = 200, output_columns: Optional[list[dict[str, Any]]] = None,
               input_columns: Optional[list[dict[str, Any]]] = None, export: bool = False,
               artifact_uri: Optional[str] = None, prefix: Optional[str] = None, secrets: Optional[dict[str, str]] = None,
               lease_ms: int = 10_000) -> Job:
    """Creates a job the way the coordinator would: queues, the script in S3, the job item (RUNNING).

    ``lease_ms`` is long by default: with six TensorFlow processes starting on two cores, a worker's
    heartbeat thread can go unscheduled for seconds, and a 3 s lease then lapses (CI, stop 23).
    Tests about lapsing pass a short one."""
    job_id = f"{prefix or mode[:3]}-{uuid.uuid4().hex[:10]}"
    members = [f"worker-{i}" for i in range(workers)]
    # As the coordinator creates them (src/jobs/queues.ts): messages up to SQS's 1 MiB limit.
    big = {"MaximumMessageSize": "1048576"}
    feed = {m: env.sqs.create_queue(QueueName=f"stf-{job_id}-feed-{m}", Attributes=big)["QueueUrl"] for m in members}
    output = env.sqs.create_queue(QueueName=f"stf-{job_id}-output", Attributes=big)["QueueUrl"]
    code_key = f"jobs/{job_id}/code/{script}"
    env.s3.put_object(Bucket=env.bucket, Key=code_key, Body=(SCRIPTS / script).read_bytes())
    spec = {
        "version": 1, "jobId": job_id, "mode": mode, "cluster": {"worker": workers, "ps": 0},
        "python": {"scripts": [f"s3://{env.bucket}/{code_key}"], "entry": entry, "hyperParams": hyper or {}, "env": {"STF_TEST_ENV": "set"},
                   **({"secrets": secrets} if secrets else {})},
        "input": {"columns": input_columns or INPUT_COLUMNS},
        "output": {"columns": output_columns} if output_columns else None,
        "batchSize": batch_size,
        "remainder": {"policy": policy, "afterMs": after_ms} if policy == "flush" else {"policy": policy},
        "bounded": bounded,
        "queues": {"feed": feed, "output": output, "dlq": output},
        "bucket": env.bucket,
        "model": {"modelId": "tiny", "exportUri": f"s3://{env.bucket}/models/tiny/versions/{job_id}/"} if export else None,
        "initModelUri": None,
        "checkpoint": {"everySteps": 0, "everySeconds": 0},
        "leaseMs": lease_ms,
    }
    if artifact_uri:
        spec["modelArtifactUri"] = artifact_uri
    now = int(time.time() * 1000)
    # Python's registry client has no create_job (the coordinator's job): put the item per docs/protocol.md.
    client("dynamodb").put_item(TableName=env.table, Item={
        "pk": {"S": f"job#{job_id}"}, "sk": {"S": "job"}, "state": {"S": "RUNNING"}, "mode": {"S": mode},
        "spec": {"S": json.dumps(spec)}, "rev": {"N": "1"}, "createdAt": {"N": str(now)}, "updatedAt": {"N": str(now)},
    })
    return Job(env, job_id, spec, list(feed.values()) + [output])


def delete_queues(env: Env, jobs: list[Job]) -> None:
    for job in jobs:
        for url in job.queues:
            env.sqs.delete_queue(QueueUrl=url)


def rows_xy(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"x": [float(i), float(i % 7)], "y": float(i % 3)} for i in range(start, start + n)]


# ---------------------------------------------------------------------------------------------
# (a) remainder policies: two workers, MultiWorkerMirroredStrategy, 1,000 rows, batch size 3


@pytest.fixture(scope="module")
def policy_runs(env, tmp_path_factory):
    """One two-worker job per policy, all three running at once; the rows split 501 / 499 so the
    members differ and each policy has a remainder to handle."""
    tmp = tmp_path_factory.mktemp("policies")
    jobs_setup: dict[str, Any] = {}
    made: list[Job] = []
    for policy in ("drop", "pad", "flush"):
        job = create_job(env, workers=2, policy=policy, after_ms=100, hyper={"epochs": 2}, prefix=f"pol-{policy}")
        made.append(job)
        per_member = {"worker-0": rows_xy(501), "worker-1": rows_xy(499, start=501)}
        steps = plan_steps([len(r) for r in per_member.values()], 3, policy).steps
        for member, rows in per_member.items():
            messages = job.feed(member, rows, per_message=40)
            job.end_of_data(member, len(rows), len(messages), steps)
        jobs_setup[policy] = (job, steps)
    procs = {policy: [job.start(i, tmp) for i in range(2)] for policy, (job, _) in jobs_setup.items()}
    started = time.monotonic()
    codes = {policy: [p.wait() for p in ps] for policy, ps in procs.items()}
    elapsed = time.monotonic() - started
    yield {p: {"job": jobs_setup[p][0], "steps": jobs_setup[p][1], "procs": procs[p], "codes": codes[p], "elapsed": elapsed} for p in procs}
    delete_queues(env, made)


@pytest.mark.parametrize("policy", ["drop", "pad", "flush"])
def test_every_policy_ends_the_job_with_the_same_steps_on_both_workers(policy_runs, policy):
    run = policy_runs[policy]
    procs, steps = run["procs"], run["steps"]
    assert run["codes"] == [0, 0], [p.stderr()[-2000:] for p in procs]
    datasets = [p.facts("dataset") for p in procs]
    fits = [p.facts("fit") for p in procs]
    assert [d["batches"] for d in datasets] == [steps, steps]
    assert [f["step"] for f in fits] == [2 * steps, 2 * steps]  # two epochs, same steps everywhere
    for p in procs:
        assert [line["epoch"] for line in p.progress_lines()] == [1, 2]
    members = {m.index: m for m in run["job"].env.registry.members(run["job"].job_id)}
    assert [members[i].status for i in (0, 1)] == ["DONE", "DONE"]


def test_drop_feeds_only_full_batches_of_the_smallest_member_count(policy_runs):
    run = policy_runs["drop"]
    s = run["steps"]
    assert s == 499 // 3
    datasets = [p.facts("dataset") for p in run["procs"]]
    assert sum(d["rows"] for d in datasets) == 2 * s * 3
    assert all(set(d["sizes"]) == {3} for d in datasets)
    assert [d["rows_seen"] for d in datasets] == [s * 3, s * 3]


def test_pad_feeds_every_real_row_once_and_masks_the_padding(policy_runs):
    run = policy_runs["pad"]
    s = run["steps"]
    datasets = [p.facts("dataset") for p in run["procs"]]
    assert sum(d["real_rows"] for d in datasets) == 1000
    assert [d["rows"] for d in datasets] == [s * 3, s * 3]  # every batch full, padding included
    assert [d["rows_seen"] for d in datasets] == [501, 499]


def test_flush_feeds_every_row_in_shorter_last_batches(policy_runs):
    run = policy_runs["flush"]
    s = run["steps"]
    datasets = [p.facts("dataset") for p in run["procs"]]
    assert sum(d["rows"] for d in datasets) == 1000
    for d in datasets:
        assert len(d["sizes"]) == s and min(d["sizes"]) >= 1 and max(d["sizes"]) == 3
        assert d["sizes"] == sorted(d["sizes"], reverse=True)  # full batches first


def test_spool_parts_in_s3_hold_every_row_received(policy_runs):
    job = policy_runs["pad"]["job"]
    for member, expected in (("worker-0", 501), ("worker-1", 499)):
        keys = [o["Key"] for o in job.env.s3.list_objects_v2(Bucket=job.env.bucket, Prefix=f"jobs/{job.job_id}/spool/{member}/")["Contents"]]
        # Beside the parts: the end-of-data message, kept for a restarted member (resume).
        assert keys[0].endswith("/end-of-data.json") and keys[1:] and all(k.endswith(".tfrecord") for k in keys[1:])
        keys = keys[1:]
        rows = sum(len(unframe_records(job.env.s3.get_object(Bucket=job.env.bucket, Key=k)["Body"].read())) for k in keys)
        assert rows == expected


# ---------------------------------------------------------------------------------------------
# (b) + (e): redelivery and export, one single-worker training job; (c) failures, in parallel


@pytest.fixture(scope="module")
def single_runs(env, tmp_path_factory):
    """Four single-worker jobs at once: a training job with a redelivered message and a secret that
    exports, a script that raises, a missing entry function, and a secret that does not exist."""
    tmp = tmp_path_factory.mktemp("single")
    made: list[Job] = []

    def job(**kw: Any) -> Job:
        made.append(create_job(env, **kw))
        return made[-1]

    secret = client("secretsmanager").create_secret(Name=f"serverless-tf/test-{uuid.uuid4().hex[:8]}", SecretString="value-from-secrets-manager")
    train = job(policy="flush", hyper={"epochs": 1, "export": True}, export=True, secrets={"STF_TEST_SECRET": secret["ARN"]})
    bodies = train.feed("worker-0", rows_xy(10), per_message=3)
    train.send("worker-0", bodies[1])  # the same feedId again, as SQS or a retried shard-feed would
    train.end_of_data("worker-0", rows=10, messages=len(bodies), steps=math.ceil(10 / 3))

    failing = job(script="failing.py")
    missing = job(entry="no_such_entry")
    unknown_arn = secret["ARN"].replace("serverless-tf/test-", "serverless-tf/gone-")
    no_secret = job(secrets={"STF_TEST_SECRET": unknown_arn})
    for j in (failing, missing):
        j.end_of_data("worker-0", rows=0, messages=0, steps=0)
    procs = {"train": train.start(0, tmp), "failing": failing.start(0, tmp), "missing": missing.start(0, tmp), "no_secret": no_secret.start(0, tmp)}
    codes = {k: p.wait() for k, p in procs.items()}
    yield {"jobs": {"train": train, "failing": failing, "missing": missing, "no_secret": no_secret}, "procs": procs, "codes": codes, "unknown_arn": unknown_arn}
    delete_queues(env, made)


def test_a_redelivered_feed_message_yields_no_duplicate_rows(single_runs):
    proc = single_runs["procs"]["train"]
    assert single_runs["codes"]["train"] == 0, proc.stderr()[-3000:]
    dataset = proc.facts("dataset")
    assert dataset["rows"] == 10 and dataset["rows_seen"] == 10
    assert dataset["env"] == "set"  # spec.python.env reached the user's code
    assert dataset["secret"] == "value-from-secrets-manager"  # and python.secrets, read by ARN from Secrets Manager
    assert "value-from-secrets-manager" not in json.dumps(single_runs["jobs"]["train"].spec), "the spec holds the ARN only"
    assert dataset["sizes"] == [3, 3, 3, 1]
    member = single_runs["jobs"]["train"].member_item(0)
    assert member.status == "DONE"


def test_export_uploads_the_saved_model_then_writes_export_json_last(single_runs):
    job = single_runs["jobs"]["train"]
    assert single_runs["codes"]["train"] == 0, single_runs["procs"]["train"].stderr()[-3000:]
    s3, bucket = job.env.s3, job.env.bucket
    prefix = job.spec["model"]["exportUri"][len(f"s3://{bucket}/"):]
    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "export.json")["Body"].read())
    assert manifest["jobId"] == job.job_id and manifest["member"] == "worker-0" and manifest["step"] == 4
    listed = {f["key"]: f["size"] for f in manifest["files"]}
    assert prefix + "artifact/saved_model.pb" in listed
    assert listed == {k: o["Size"] for k, o in objects.items() if k != prefix + "export.json"}
    last_artifact = max(o["LastModified"] for k, o in objects.items() if k in listed)
    assert objects[prefix + "export.json"]["LastModified"] >= last_artifact


def test_a_script_that_raises_marks_the_member_failed_with_the_traceback_tail(single_runs):
    proc, job = single_runs["procs"]["failing"], single_runs["jobs"]["failing"]
    assert single_runs["codes"]["failing"] == 1
    member = job.member_item(0)
    assert member.status == "FAILED"
    assert "ValueError: the user script failed on purpose: value=42" in member.error
    assert "helper_that_fails" in member.error and len(member.error.splitlines()) <= 30
    assert "Traceback" in proc.stderr()


def test_a_secret_that_cannot_be_read_fails_the_member_naming_the_variable_and_the_arn(single_runs):
    assert single_runs["codes"]["no_secret"] == 1
    error = single_runs["jobs"]["no_secret"].member_item(0).error
    assert "python.secrets['STF_TEST_SECRET']" in error and single_runs["unknown_arn"] in error
    assert "ResourceNotFoundException" in error


def test_a_missing_entry_function_fails_naming_the_script_and_its_functions(single_runs):
    job = single_runs["jobs"]["missing"]
    assert single_runs["codes"]["missing"] == 1
    error = job.member_item(0).error
    assert "'no_such_entry' is not defined in train_tiny.py" in error
    assert "Functions it defines: ['_report', 'train']" in error


# ---------------------------------------------------------------------------------------------
# (d) inference: results leave at once, typed, with their __row_id


OUTPUT_COLUMNS = [{"name": "doubled", "dtype": "INT64", "shape": "scalar"}, {"name": "score", "dtype": "FLOAT32", "shape": "scalar"}]
INFER_INPUT = [{"name": "x", "dtype": "FLOAT32", "shape": {"fixed": 2}}, {"name": "n", "dtype": "INT64", "shape": "scalar"}]


def test_inference_sends_each_result_before_the_next_row_arrives(env, single_runs, tmp_path):
    # Arrange: the model exported by the training job above; batches of 4, but rows come one by one.
    export_uri = single_runs["jobs"]["train"].spec["model"]["exportUri"]
    job = create_job(env, mode="inference", script="predict_double.py", entry="predict", policy="flush", after_ms=200,
                     batch_size=4, input_columns=INFER_INPUT, output_columns=OUTPUT_COLUMNS, artifact_uri=export_uri + "artifact/")
    out_columns = columns_from_json(OUTPUT_COLUMNS + [{"name": "__row_id", "dtype": "INT64", "shape": "scalar"}])
    try:
        proc = job.start(0, tmp_path)
        received: list[dict[str, Any]] = []
        # Act: feed one row, wait for its result, then the next (a one-behind worker would stall here).
        for i in range(3):
            job.feed("worker-0", [{"x": [1.0, float(i)], "n": 10 + i, "__row_id": 100 + i}], per_message=1)
            deadline = time.monotonic() + 60
            got: list[dict[str, Any]] = []
            while not got and time.monotonic() < deadline and proc.popen.poll() is None:
                got = [m for m in job.output_messages(wait_s=1) if m["kind"] == "rows"]
            assert got, f"no output for row {i} before the next row; stderr:\n{proc.stderr()[-3000:]}"
            received.extend(got)
        job.feed("worker-0", [{"x": [2.0, 2.0], "n": 20 + i, "__row_id": 200 + i} for i in range(5)], per_message=5)
        job.end_of_data("worker-0", rows=8, messages=4, steps=2)
        code = proc.wait()
        received.extend(job.output_messages(wait_s=1) + job.output_messages())
        # Assert
        assert code == 0, proc.stderr()[-3000:]
        rows = [decode_example(r, out_columns) for m in received if m["kind"] == "rows" for r in unframe_records(base64.b64decode(m["data"]))]
        ends = [m for m in received if m["kind"] == "end-of-output"]
        assert sorted(r["__row_id"] for r in rows) == [100, 101, 102, 200, 201, 202, 203, 204]
        assert all(r["doubled"] == 2 * (10 + r["__row_id"] - 100 if r["__row_id"] < 200 else 20 + r["__row_id"] - 200) for r in rows)
        assert all(isinstance(r["doubled"], int) and isinstance(r["score"], float) for r in rows)
        assert [e["rows"] for e in ends] == [8]
        assert job.member_item(0).status == "DONE"
    finally:
        delete_queues(env, [job])


# ---------------------------------------------------------------------------------------------
# Fencing: a worker whose slot was taken over leaves at once


def test_a_fenced_worker_exits_non_zero_saying_so(env, tmp_path):
    # Arrange: a two-worker job with only worker-0 started, so it waits at the start barrier.
    job = create_job(env, workers=2)
    try:
        proc = job.start(0, tmp_path)
        deadline = time.monotonic() + 60
        while not any(m.index == 0 for m in env.registry.members(job.job_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Act: another registration of the slot (epoch + 1), as a replacement worker would make.
        client("dynamodb").update_item(
            TableName=env.table, Key={"pk": {"S": f"job#{job.job_id}"}, "sk": {"S": "member#worker#0"}},
            UpdateExpression="SET epoch = epoch + :one", ExpressionAttributeValues={":one": {"N": "1"}},
        )
        code = proc.wait(timeout_s=30)
        # Assert
        assert code == 3
        assert "worker-0 was fenced" in proc.stderr()
    finally:
        delete_queues(env, [job])
