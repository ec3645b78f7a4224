import uuid

import pytest
from botocore.exceptions import ClientError

from serverless_tf.aws import AwsSettings, client


def test_settings_point_every_service_at_the_endpoint_with_emulator_credentials():
    s = AwsSettings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9324"})
    assert s.endpoints == {"s3": "http://127.0.0.1:4566", "sqs": "http://127.0.0.1:9324", "dynamodb": "http://127.0.0.1:4566", "secretsmanager": "http://127.0.0.1:4566"}
    assert (s.access_key_id, s.secret_access_key) == ("test", "test")


def test_settings_without_endpoint_use_real_aws_and_the_default_chain():
    s = AwsSettings.from_env({"AWS_REGION": "eu-west-1"})
    assert s.region == "eu-west-1"
    assert not any(s.endpoints.values())
    assert s.access_key_id is None


def test_emulator_serves_bucket_queue_table_and_refuses_a_second_conditional_write():
    # Arrange
    name = f"smoke-py-{uuid.uuid4().hex[:8]}"
    s3, sqs, ddb = client("s3"), client("sqs"), client("dynamodb")
    s3.create_bucket(Bucket=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    try:
        # Act
        s3.put_object(Bucket=name, Key="k", Body=b"hi")
        sqs.send_message(QueueUrl=queue_url, MessageBody="ping")
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2).get("Messages", [])

        def put(value):
            ddb.put_item(TableName=name, Item={"pk": {"S": "job"}, "v": {"S": value}}, ConditionExpression="attribute_not_exists(pk)")

        put("first")
        with pytest.raises(ClientError) as refused:
            put("second")

        # Assert
        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"hi"
        assert [m["Body"] for m in messages] == ["ping"]
        assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        item = ddb.get_item(TableName=name, Key={"pk": {"S": "job"}}, ConsistentRead=True)["Item"]
        assert item["v"]["S"] == "first"
    finally:
        s3.delete_object(Bucket=name, Key="k")
        s3.delete_bucket(Bucket=name)
        sqs.delete_queue(QueueUrl=queue_url)
        ddb.delete_table(TableName=name)
