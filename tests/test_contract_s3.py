"""The plugin-author contract (publisher_core.testing) run against the s3 publisher.

By default against moto over HTTP; with ``PUBLISHER_TEST_CEPH`` set (``required`` or
``yes``) against Ceph RGW as well, through the ``s3`` fixture of tests/s3_servers.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from publisher_core.testing import PublisherContract
from tests.s3_servers import S3Server, s3_spec

SERVERS = ["moto", "ceph"] if os.environ.get("PUBLISHER_TEST_CEPH") else ["moto"]


@pytest.mark.parametrize("s3", SERVERS, indirect=True)
class TestS3PublisherContract(PublisherContract):
    publisher_type = "s3"

    @pytest.fixture(autouse=True)
    def _store(self, s3: S3Server) -> None:
        self.settings = {"concurrency": 4}
        self.server = s3
        self.bucket = s3.new_bucket()

    def spec(self, key: str, *, compress: bool) -> dict[str, Any]:
        return s3_spec(self.server, self.bucket, key, compress)

    def stored(self) -> set[str]:
        client = self.server.client()
        keys = {
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for obj in page.get("Contents", [])
        }
        uploads = client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return keys | {f"multipart upload of {u['Key']}" for u in uploads}
