"""Fixtures shared by the Python suite."""
import uuid

import pytest

from serverless_tf.aws import client
from serverless_tf.registry import table_name_from_env

from registry_helpers import ensure_registry_table


@pytest.fixture(scope="module")
def table():
    """The registry table of the environment (``SERVERLESS_TF_TABLE``), created if missing."""
    return ensure_registry_table(table_name_from_env())


@pytest.fixture
def queue_and_bucket():
    """A fresh SQS queue and S3 bucket of the same name, deleted with their contents afterwards."""
    sqs, s3 = client("sqs"), client("s3")
    name = f"stf-feed-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    s3.create_bucket(Bucket=name)
    yield sqs, s3, url, name
    sqs.delete_queue(QueueUrl=url)
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)
