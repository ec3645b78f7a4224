"""AWS plumbing: the one boto3 client factory (:mod:`.clients`), fault injection at the client
(:mod:`.faults`) and the S3 helpers the worker shares (:mod:`.s3`).

Example:
    >>> from serverless_tf.aws import client
    >>> sqs = client("sqs")  # doctest: +SKIP
"""
from .clients import SERVICES, AwsSettings, client

__all__ = ["SERVICES", "AwsSettings", "client"]
