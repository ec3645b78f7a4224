"""Which address a worker advertises to its peers."""
import json

import pytest

from serverless_tf.worker import default_host


def test_an_explicit_host_wins():
    assert default_host({"SERVERLESS_TF_HOST": "10.1.2.3", "ECS_CONTAINER_METADATA_URI_V4": "http://x"}) == "10.1.2.3"


def test_on_ecs_the_task_private_ip_comes_from_the_metadata_endpoint():
    metadata = {"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.3.17"]}]}
    fetched = []

    def fetch(url):
        fetched.append(url)
        return json.dumps(metadata).encode()

    assert default_host({"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"}, fetch) == "10.0.3.17"
    assert fetched == ["http://169.254.170.2/v4/abc"]


def test_metadata_without_an_address_is_a_clear_error():
    with pytest.raises(RuntimeError, match="SERVERLESS_TF_HOST"):
        default_host({"ECS_CONTAINER_METADATA_URI_V4": "http://m"}, lambda url: b'{"Networks": []}')


def test_a_local_process_uses_the_loopback():
    assert default_host({}) == "127.0.0.1"
