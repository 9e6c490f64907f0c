"""An S3-compatible endpoint for the embedded stack: moto's server, with a bucket and credentials of its own.
"""

from __future__ import annotations

import secrets
import sys

from .constants import LOOPBACK, S3_BUCKET, S3_REGION
from .process import new_secret, pick_port
from .service import Service


class S3(Service):
    name = "s3"
    expect = "moto.server"

    def port(self, facts: dict) -> int | None:
        url = facts.get("endpoint_url")
        return int(url.rsplit(":", 1)[1]) if url else None

    def start(self, old: dict, **ctx) -> dict:
        port = pick_port(self.port(old))
        facts = {"endpoint_url": f"http://{LOOPBACK}:{port}", "region": S3_REGION,
                 "access_key": old.get("access_key") or "keel-" + secrets.token_hex(6),
                 "secret_key": old.get("secret_key") or new_secret(), "bucket": S3_BUCKET}
        # moto keeps everything in memory, so a restarted endpoint needs its bucket again.
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
        self.launch(facts, argv, lambda: self._create_bucket(facts))
        return facts

    @staticmethod
    def client(facts: dict):
        import boto3

        return boto3.client("s3", endpoint_url=facts["endpoint_url"], region_name=facts["region"],
                            aws_access_key_id=facts["access_key"],
                            aws_secret_access_key=facts["secret_key"])

    def _create_bucket(self, facts: dict) -> bool:
        client = self.client(facts)
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if facts["bucket"] not in names:
            client.create_bucket(Bucket=facts["bucket"])
        return True

    def describe(self, facts: dict) -> str:
        return f"{facts['endpoint_url']} bucket {facts['bucket']}"
