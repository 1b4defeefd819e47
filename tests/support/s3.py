"""A real S3-protocol server on loopback for the tests: moto's standalone server, one per test
process, and a fresh bucket per test.

The gateway reaches it as an operator's deployment would reach MinIO: `s3://BUCKET/PREFIX` with
the endpoint and credentials in the standard AWS variables (set for the test's duration), so
what is tested is the gateway's own configuration path, not a test shortcut. The tests inspect
the bucket with boto3, a client independent of the gateway's (obstore).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any credentials; these are not secrets of anything.
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


@dataclass
class Bucket:
    """A bucket of the test's own, its URL for the gateway, and a client to look inside."""

    name: str
    prefix: str
    endpoint: str
    client: Any  # boto3's S3 client (untyped)

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def keys(self) -> list[str]:
        """Every object's key under the prefix (relative to it), sorted."""
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix + "/"
        )
        for page in pages:
            found += [
                item["Key"].removeprefix(self.prefix + "/") for item in page.get("Contents", [])
            ]
        return sorted(found)

    def read(self, key: str) -> bytes:
        """An object's bytes (key relative to the prefix)."""
        body = self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"]
        return bytes(body.read())

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        answer = self.client.list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1 (a free port), for the whole test process."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_environment(endpoint: str) -> dict[str, str]:
    """The standard AWS variables that point a client at `endpoint` over plain HTTP."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
    }


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new, empty bucket, and the AWS variables set to reach it for this test."""
    environment = s3_environment(s3_endpoint)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    name = f"test-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=name)
    return Bucket(name=name, prefix="gateway", endpoint=s3_endpoint, client=client)
