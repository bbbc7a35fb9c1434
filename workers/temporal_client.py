"""One way to connect to Temporal, shared by the CLI, workers, webhook and tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.config import TemporalSettings


async def connect(settings: TemporalSettings | None = None, *, interceptors: list | None = None) -> Client:
    """Connect with the pydantic data converter (every boundary model is pydantic)."""
    settings = settings or TemporalSettings.from_env()
    tls: bool | TLSConfig = settings.tls
    if settings.tls and (settings.tls_cert_file or settings.tls_ca_file):
        tls = TLSConfig(
            client_cert=Path(settings.tls_cert_file).read_bytes() if settings.tls_cert_file else None,
            client_private_key=Path(settings.tls_key_file).read_bytes() if settings.tls_key_file else None,
            server_root_ca_cert=Path(settings.tls_ca_file).read_bytes() if settings.tls_ca_file else None,
        )
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key,
        tls=tls,
        data_converter=pydantic_data_converter,
        interceptors=interceptors or [],
    )


def find_binary(name: str) -> Path | None:
    """The `temporal` / `temporal-test-server` binary installed next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None
