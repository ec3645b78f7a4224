"""The one place that builds boto3 clients: endpoint, region and emulator credentials.

Reads the same variables as the TypeScript client factory (src/aws/clients.ts):
``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_S3`` / ``_SQS`` / ``_DYNAMODB`` /
``_SECRETSMANAGER`` (the workers read ``python.secrets`` from it),
``AWS_REGION`` (default ``us-east-1``). When an endpoint is set and no credentials are,
the emulator's conventional ``test``/``test`` pair is used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

import boto3
from botocore.config import Config

SERVICES = ("s3", "sqs", "dynamodb", "secretsmanager")


@dataclass(frozen=True)
class AwsSettings:
    region: str
    endpoints: Mapping[str, Optional[str]]
    access_key_id: Optional[str]
    secret_access_key: Optional[str]

    @staticmethod
    def from_env(env: Mapping[str, str] = os.environ) -> "AwsSettings":
        default = env.get("AWS_ENDPOINT_URL") or None
        endpoints = {s: env.get(f"AWS_ENDPOINT_URL_{s.upper()}") or default for s in SERVICES}
        uses_emulator = any(endpoints.values())
        key = env.get("AWS_ACCESS_KEY_ID") or ("test" if uses_emulator else None)
        secret = env.get("AWS_SECRET_ACCESS_KEY") or ("test" if uses_emulator else None)
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        return AwsSettings(region, endpoints, key, secret)


def client(service: str, settings: Optional[AwsSettings] = None):
    """A boto3 client for ``service`` (one of :data:`SERVICES`) configured from the environment.

    Example:
        >>> sqs = client("sqs")  # doctest: +SKIP
    """
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    s = settings or AwsSettings.from_env()
    config = Config(
        region_name=s.region,
        retries={"max_attempts": 8, "mode": "adaptive"},
        s3={"addressing_style": "path"} if s.endpoints[service] else None,
    )
    from . import faults  # the injector is off unless SERVERLESS_TF_FAULT_RATE is set

    return faults.install(boto3.client(
        service,
        endpoint_url=s.endpoints[service],
        aws_access_key_id=s.access_key_id,
        aws_secret_access_key=s.secret_access_key,
        region_name=s.region,
        config=config,
    ))
