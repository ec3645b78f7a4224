"""``python.secrets``: environment variables whose values come from Secrets Manager.

The spec holds only each secret's ARN; the worker reads the value with its job role (which may
read exactly those ARNs, src/workers/job-role.ts) and puts it in its own environment before the
user's code is imported. Values are never logged, stored or sent anywhere else.
"""
from __future__ import annotations

from typing import Any, Mapping

from botocore.exceptions import ClientError


class SecretError(RuntimeError):
    """A secret the spec names could not be read."""


def resolve_secrets(secrets: Mapping[str, str], secretsmanager: Any) -> dict[str, str]:
    """The value of each secret, by environment name.

    Raises:
        SecretError: naming the variable, the ARN and Secrets Manager's error code, for a secret
            that is missing, unreadable with the job's role, or binary.

    Example:
        >>> resolve_secrets({}, None)
        {}
    """
    values: dict[str, str] = {}
    for name, arn in secrets.items():
        try:
            found = secretsmanager.get_secret_value(SecretId=arn)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            raise SecretError(
                f"python.secrets[{name!r}]: {arn} could not be read ({code}). Check that the secret exists in this account and region, "
                "under serverless-tf/ (the only secrets a job role may read)"
            ) from None
        if "SecretString" not in found:
            raise SecretError(f"python.secrets[{name!r}]: {arn} holds binary data; an environment variable needs a string secret")
        values[name] = found["SecretString"]
    return values
