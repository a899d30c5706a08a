"""A real S3-compatible server for the tests: moto's server mode (`moto_server`, moto[server]) as its own
process on loopback, with a bucket made through boto3 like any S3 client would."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from services.core.embedded_broker import free_port
from services.core.processes import spawn, stop

REGION = "us-east-1"
ACCESS_KEY = "parley-test"
SECRET_KEY = "parley-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def recorder_settings(self, url: str, **more: Any) -> dict[str, Any]:
        """The recorder's settings for an object store at `url` on this server."""
        return {
            "object_store_url": url,
            "object_store_endpoint": self.endpoint,
            "object_store_region": REGION,
            "object_store_access_key_id": ACCESS_KEY,
            "object_store_secret_access_key": SECRET_KEY,
            **more,
        }


@contextmanager
def s3_server(log_dir: Path, *buckets: str) -> Iterator[S3Server]:
    """`moto_server` on 127.0.0.1 with `buckets` made; stopped when the block ends, also on failure."""
    port = free_port()
    moto = str(Path(sys.executable).parent / "moto_server")
    process = spawn([moto, "-H", "127.0.0.1", "-p", str(port)], log_path=log_dir / "moto.log")
    try:
        server = S3Server(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{server.endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(
                        f"moto_server did not start: {(log_dir / 'moto.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        for bucket in buckets:
            server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        stop(process, timeout_s=5)
