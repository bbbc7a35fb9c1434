"""A real S3 API for the tests: moto in server mode, in a process of its own on a free port.

The store's S3 backend talks to it over HTTP through boto3 exactly as it talks to AWS S3 or MinIO, so the
tests exercise the same requests (path-style addressing, 404s, paginated listings, batch deletes). The
server keeps everything in memory and reaches nothing outside this machine.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
ACCESS_KEY = "moto-test-key"
SECRET_KEY = "moto-test-secret"


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> S3Client:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def new_bucket(self) -> str:
        name = f"spec2ship-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "test/") -> dict[str, str]:
        """The worker configuration that points the store at this server."""
        return {"SPEC2SHIP_STORE": "s3", "SPEC2SHIP_STORE_BUCKET": bucket, "SPEC2SHIP_STORE_PREFIX": prefix,
                "SPEC2SHIP_STORE_ENDPOINT": self.endpoint, "SPEC2SHIP_STORE_REGION": REGION,
                "SPEC2SHIP_STORE_ACCESS_KEY_ID": ACCESS_KEY, "SPEC2SHIP_STORE_SECRET_ACCESS_KEY": SECRET_KEY}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary() -> str:
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("moto_server is missing: install the dev extra (pip install -e '.[dev]', moto[server])")
    return found


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's server and wait until it answers; stop it on exit."""
    port = _free_port()
    process = subprocess.Popen([_binary(), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode} before answering on port {port}")
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on port {port} within 30 s") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
