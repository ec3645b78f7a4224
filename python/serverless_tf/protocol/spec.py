"""The JobSpec (docs/protocol.md "JobSpec"), parsed once at the worker's edge into typed dataclasses.

Every check names the field, quotes what was received and says what is allowed, so a bad job
fails at start instead of three calls deep. Unknown fields are ignored (a newer coordinator may
add some); missing required fields are errors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from .names import JOB_ID_PATTERN, SECRET_ARN_PATTERN, member_name
from .schema import Column, Fixed, columns_from_json

Mode = Literal["train", "inference"]
Policy = Literal["drop", "pad", "flush"]
#: How a trained model is served: ``script`` runs its Python inference entry; ``signature`` runs
#: its exported serving signature as ONNX (docs/protocol.md "Exports and model versions").
ServingMode = Literal["script", "signature"]
SERVING_MODES = ("script", "signature")
#: What an ONNX serving signature carries: numeric tensors of fixed width, batch first.
SIGNATURE_DTYPES = ("FLOAT32", "FLOAT64", "INT32", "INT64")


class SpecError(ValueError):
    """The job item's spec is missing a field or holds a value the worker cannot run."""


@dataclass(frozen=True)
class ClusterSpec:
    worker: int
    ps: int

    def members(self) -> list[str]:
        """Member names (``chief-0`` with parameter servers, ``worker-0``, ..., ``ps-0``, ...) in cluster order."""
        chief = [member_name("chief", 0)] if self.ps else []
        return chief + [member_name("worker", i) for i in range(self.worker)] + [member_name("ps", i) for i in range(self.ps)]

    def count(self, role: str) -> int:
        """How many members of ``role`` the cluster has: one chief with parameter servers, else none."""
        return {"worker": self.worker, "ps": self.ps, "chief": 1 if self.ps else 0}.get(role, 0)

    def barrier_counts(self) -> dict[str, int]:
        return {role: self.count(role) for role in ("chief", "worker", "ps")}


@dataclass(frozen=True)
class PythonSpec:
    scripts: tuple[str, ...]
    entry: str
    hyper_params: Mapping[str, Any]
    env: Mapping[str, str]
    #: Environment name -> Secrets Manager ARN, resolved by the worker before user code loads.
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Remainder:
    policy: Policy
    after_ms: Optional[int] = None


@dataclass(frozen=True)
class Queues:
    feed: Mapping[str, str]
    output: Optional[str]
    dlq: Optional[str]


@dataclass(frozen=True)
class ModelSpec:
    """Where exports go and how the model will be served.

    ``versions_uri`` (unbounded jobs): every export is a new version under it. ``serving_mode``,
    ``serving_input`` and ``serving_output`` come from ``model.inference`` (``servingMode`` and its
    input / output columns; empty without it): in ``signature`` mode the chief also exports the
    serving signature between those columns as ONNX.
    """

    model_id: str
    export_uri: str
    versions_uri: Optional[str] = None
    serving_mode: ServingMode = "script"
    serving_input: tuple[Column, ...] = ()
    serving_output: tuple[Column, ...] = ()


@dataclass(frozen=True)
class CheckpointSpec:
    every_steps: int = 0
    every_seconds: int = 0


@dataclass(frozen=True)
class ExportSpec:
    """Unbounded training: export a new model version every ``every_steps`` steps or ``every_seconds`` seconds (0 = off)."""

    every_steps: int = 0
    every_seconds: int = 0


@dataclass(frozen=True)
class JobSpec:
    """A parsed, validated JobSpec. Column lists hold :class:`~serverless_tf.protocol.schema.Column` objects.

    Example:
        >>> spec = JobSpec.from_json(item["spec"]["S"])  # doctest: +SKIP
        >>> spec.remainder.policy
        'drop'
    """

    version: int
    job_id: str
    mode: Mode
    cluster: ClusterSpec
    python: PythonSpec
    input_columns: tuple[Column, ...]
    output_columns: Optional[tuple[Column, ...]]
    batch_size: int
    remainder: Remainder
    bounded: bool
    queues: Queues
    bucket: str
    model: Optional[ModelSpec]
    init_model_uri: Optional[str]
    checkpoint: CheckpointSpec
    lease_ms: int
    export: ExportSpec = ExportSpec()
    model_artifact_uri: Optional[str] = None

    @property
    def feed_idle_timeout_ms(self) -> int:
        """How long a feed may deliver nothing before the worker fails: 12 leases."""
        return 12 * self.lease_ms

    @property
    def barrier_deadline_ms(self) -> int:
        """How long the start barrier may take: 30 leases."""
        return 30 * self.lease_ms

    @staticmethod
    def from_json(text: str) -> "JobSpec":
        """Parses the JSON string stored in the job item's ``spec`` attribute.

        Args:
            text: the JSON of a JobSpec.

        Returns:
            The validated spec.

        Raises:
            SpecError: on invalid JSON, a missing field or a value out of range.
        """
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            raise SpecError(f"the job spec is not valid JSON ({e}). Received: {str(text)[:200]!r}") from e
        return JobSpec.from_dict(data)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "JobSpec":
        """Validates a decoded JobSpec. See :meth:`from_json`."""
        if not isinstance(data, Mapping):
            raise SpecError(f"the job spec must be a JSON object. Received: {type(data).__name__}")
        version = _int(data, "version", minimum=1)
        if version != 1:
            raise SpecError(f"unsupported job spec version. Received: version={version}; this worker reads version 1")
        job_id = _str(data, "jobId")
        if not JOB_ID_PATTERN.match(job_id):
            raise SpecError(f"jobId must match {JOB_ID_PATTERN.pattern}. Received: jobId={job_id!r}")
        mode = _str(data, "mode")
        if mode not in ("train", "inference"):
            raise SpecError(f"mode must be 'train' or 'inference'. Received: mode={mode!r}")

        cluster_raw = _obj(data, "cluster")
        cluster = ClusterSpec(_int(cluster_raw, "worker", "cluster.", minimum=1), _int(cluster_raw, "ps", "cluster.", minimum=0))

        py = _obj(data, "python")
        scripts = py.get("scripts")
        if not isinstance(scripts, list) or not scripts or not all(isinstance(s, str) and s.startswith("s3://") for s in scripts):
            raise SpecError(f"python.scripts must be a non-empty list of s3:// URIs. Received: python.scripts={scripts!r}")
        env = py.get("env") or {}
        if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise SpecError(f"python.env must map strings to strings. Received: python.env={env!r}")
        hyper = py.get("hyperParams") or {}
        if not isinstance(hyper, Mapping):
            raise SpecError(f"python.hyperParams must be a JSON object. Received: {hyper!r}")
        secrets = py.get("secrets") or {}
        if not isinstance(secrets, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and SECRET_ARN_PATTERN.match(v) for k, v in secrets.items()):
            raise SpecError(f"python.secrets must map environment names to Secrets Manager ARNs under serverless-tf/. Received: python.secrets={secrets!r}")
        python = PythonSpec(tuple(scripts), _str(py, "entry", "python."), dict(hyper), dict(env), dict(secrets))

        input_columns = _columns(_obj(data, "input").get("columns"), "input.columns")
        output_raw = data.get("output")
        output_columns = None if output_raw is None else _columns(_obj(data, "output").get("columns"), "output.columns")
        if mode == "inference" and not output_columns:
            raise SpecError("an inference job needs output.columns (what ctx.write sends). Received: output=" + json.dumps(output_raw))

        batch_size = _int(data, "batchSize", minimum=1)
        rem = _obj(data, "remainder")
        policy = rem.get("policy")
        if policy not in ("drop", "pad", "flush"):
            raise SpecError(f"remainder.policy must be 'drop', 'pad' or 'flush'. Received: remainder={dict(rem)!r}")
        after_ms = _int(rem, "afterMs", "remainder.", minimum=0) if policy == "flush" else None
        bounded = data.get("bounded")
        if not isinstance(bounded, bool):
            raise SpecError(f"bounded must be true or false. Received: bounded={bounded!r}")

        q = _obj(data, "queues")
        feed = q.get("feed")
        if not isinstance(feed, Mapping) or not all(isinstance(v, str) for v in feed.values()):
            raise SpecError(f"queues.feed must map member names to queue URLs. Received: queues.feed={feed!r}")
        queues = Queues(dict(feed), q.get("output"), q.get("dlq"))
        if mode == "inference" and not queues.output:
            raise SpecError("an inference job needs queues.output. Received: queues=" + json.dumps(dict(q)))

        model_raw = data.get("model")
        model = None
        if model_raw is not None:
            m = _obj(data, "model")
            export_uri = _str(m, "exportUri", "model.")
            if not export_uri.startswith("s3://"):
                raise SpecError(f"model.exportUri must be an s3:// prefix. Received: {export_uri!r}")
            versions_uri = _opt_str(m, "versionsUri")
            if versions_uri is not None and not versions_uri.startswith("s3://"):
                raise SpecError(f"model.versionsUri must be an s3:// prefix. Received: {versions_uri!r}")
            serving_mode, serving_input, serving_output = _serving(m.get("inference"))
            model = ModelSpec(_str(m, "modelId", "model."), export_uri if export_uri.endswith("/") else export_uri + "/",
                              None if versions_uri is None else versions_uri.rstrip("/") + "/",
                              serving_mode, serving_input, serving_output)

        ck = data.get("checkpoint") or {}
        checkpoint = CheckpointSpec(int(ck.get("everySteps", 0) or 0), int(ck.get("everySeconds", 0) or 0))
        ex = data.get("export") or {}
        export = ExportSpec(_int(ex, "everySteps", "export.") if "everySteps" in ex else 0,
                            _int(ex, "everySeconds", "export.") if "everySeconds" in ex else 0)
        if not bounded and model is not None and model.versions_uri is None:
            raise SpecError("an unbounded training job needs model.versionsUri (each export is a new version). Received: model=" + json.dumps(model_raw))
        return JobSpec(
            version=version,
            job_id=job_id,
            mode=mode,  # type: ignore[arg-type]
            cluster=cluster,
            python=python,
            input_columns=input_columns,
            output_columns=output_columns,
            batch_size=batch_size,
            remainder=Remainder(policy, after_ms),
            bounded=bounded,
            queues=queues,
            bucket=_str(data, "bucket"),
            model=model,
            init_model_uri=_opt_str(data, "initModelUri"),
            checkpoint=checkpoint,
            lease_ms=_int(data, "leaseMs", minimum=100),
            export=export,
            model_artifact_uri=_opt_str(data, "modelArtifactUri"),
        )

    def feed_queue(self, member: str) -> str:
        """The feed queue URL of ``member`` (``worker-0``).

        Raises:
            SpecError: when the spec has no feed queue for that member.
        """
        url = self.queues.feed.get(member)
        if not url:
            raise SpecError(f"queues.feed has no queue for {member!r}. Received keys: {sorted(self.queues.feed)}")
        return url


def _obj(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise SpecError(f"{prefix}{key} must be a JSON object. Received: {prefix}{key}={value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{prefix}{key} must be a non-empty string. Received: {prefix}{key}={value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> Optional[str]:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"{key} must be a string or null. Received: {key}={value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, prefix: str = "", minimum: int = 0) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise SpecError(f"{prefix}{key} must be an integer >= {minimum}. Received: {prefix}{key}={value!r}")
    return int(value)


def _serving(raw: Any) -> tuple[ServingMode, tuple[Column, ...], tuple[Column, ...]]:
    """``model.inference`` as (serving mode, input columns, output columns); no inference config serves by script."""
    if raw is None:
        return "script", (), ()
    if not isinstance(raw, Mapping):
        raise SpecError(f"model.inference must be a JSON object or null. Received: model.inference={raw!r}")
    mode = raw.get("servingMode", "script")
    if mode not in SERVING_MODES:
        raise SpecError(f"model.inference.servingMode must be 'script' or 'signature' (or absent: 'script'). Received: model.inference.servingMode={mode!r}")
    prefix = "model.inference."
    inputs = _columns(_obj(raw, "input", prefix).get("columns"), prefix + "input.columns")
    outputs = _columns(_obj(raw, "output", prefix).get("columns"), prefix + "output.columns")
    if mode == "signature":
        for side, columns in (("input", inputs), ("output", outputs)):
            for c in columns:
                if c.dtype not in SIGNATURE_DTYPES or not (c.shape == "scalar" or isinstance(c.shape, Fixed)):
                    raise SpecError(
                        f"{prefix}{side}.columns: column {c.name!r} is {c.dtype} with shape {json.dumps(c.to_json()['shape'])}, which servingMode "
                        f"'signature' cannot carry: its ONNX tensors are numeric and of fixed width (dtype {', '.join(SIGNATURE_DTYPES)}; "
                        "shape \"scalar\" or {\"fixed\": n}). Change the column, or serve the model with servingMode 'script'.")
    return mode, inputs, outputs


def _columns(raw: Any, name: str) -> tuple[Column, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise SpecError(f"{name} must be a non-empty list of columns. Received: {name}={raw!r}")
    try:
        return tuple(columns_from_json(list(raw)))
    except Exception as e:  # the schema raises its own typed error; keep it as the cause
        raise SpecError(f"{name} is not a valid column list: {e}") from e
