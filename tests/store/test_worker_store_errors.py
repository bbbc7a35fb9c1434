"""A worker whose blob store is misconfigured or unreachable stops at start with one line that says which
setting to check, before it takes any work (and before it even reaches Temporal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from store.test_store_contract import socket_closed_port

SPEC2SHIP = str(Path(sys.executable).parent / "spec2ship")


def _worker(tmp_path: Path, **store: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SPEC2SHIP_STORE")}
    env.update(TEMPORAL_ADDRESS="127.0.0.1:1", COLUMNS="200", **store)
    return subprocess.run([SPEC2SHIP, "worker", "--data-dir", str(tmp_path / "state")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("settings", "said"), [
    ({"SPEC2SHIP_STORE": "s3"}, "blob store: SPEC2SHIP_STORE=s3 needs a bucket: set SPEC2SHIP_STORE_BUCKET"),
    ({"SPEC2SHIP_STORE": "gcs"}, "blob store: SPEC2SHIP_STORE='gcs' is not a store; use folder or s3"),
])
def test_a_misconfigured_store_is_one_line(tmp_path: Path, settings: dict[str, str], said: str) -> None:
    done = _worker(tmp_path, **settings)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {said}"]


def test_an_unreachable_store_is_one_line(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        done = _worker(tmp_path, SPEC2SHIP_STORE="s3", SPEC2SHIP_STORE_BUCKET="blobs",
                       SPEC2SHIP_STORE_ENDPOINT=f"http://127.0.0.1:{port}", SPEC2SHIP_STORE_ACCESS_KEY_ID="k",
                       SPEC2SHIP_STORE_SECRET_ACCESS_KEY="s", SPEC2SHIP_STORE_REGION="us-east-1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: blob store: checking the bucket: s3://blobs/spec2ship/ at http://127.0.0.1:{port} "
                           "is unreachable") and "SPEC2SHIP_STORE_ENDPOINT" in line
