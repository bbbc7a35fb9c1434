"""One way to connect to Temporal, shared by the CLI, workers, webhook and tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

from temporalio.client import Client, Interceptor, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities.config import CodecSettings, ConfigError, TemporalSettings

_CONNECTED = False
_METRICS_RUNTIME: Runtime | None = None
METRICS_PORT_ENV = "SPEC2SHIP_METRICS_PORT"


def connected() -> bool:
    """Whether this process opened a Temporal client (its native runtime is then running)."""
    return _CONNECTED


async def connect(settings: TemporalSettings | None = None, *, interceptors: list | None = None) -> Client:
    """Connect with the pydantic data converter (every boundary model is pydantic), encrypting payloads
    when codec keys are configured (`data_converter`); a bad key configuration raises `CodecConfigError`
    before any connection is tried.

    `interceptors` None: Temporal's tracing interceptor when this process set telemetry up
    (`activities.telemetry.process_telemetry`), so workers built on the client trace too; [] for none.
    """
    settings = settings or TemporalSettings.from_env()
    converter = data_converter(settings.codec)
    if interceptors is None:
        interceptors = default_interceptors()
    tls: bool | TLSConfig = settings.tls
    if settings.tls and (settings.tls_cert_file or settings.tls_ca_file):
        tls = TLSConfig(
            client_cert=Path(settings.tls_cert_file).read_bytes() if settings.tls_cert_file else None,
            client_private_key=Path(settings.tls_key_file).read_bytes() if settings.tls_key_file else None,
            server_root_ca_cert=Path(settings.tls_ca_file).read_bytes() if settings.tls_ca_file else None,
        )
    global _CONNECTED
    _CONNECTED = True
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key,
        tls=tls,
        data_converter=converter,
        interceptors=interceptors,
        runtime=metrics_runtime(),
    )


def metrics_runtime() -> Runtime | None:
    """With SPEC2SHIP_METRICS_PORT set, one Temporal runtime per process serving Prometheus `/metrics` on that
    port: the SDK's own metrics and spec2ship's (contracts/metrics.py), counters with `_total`, durations in
    seconds. None: the default runtime, no endpoint."""
    global _METRICS_RUNTIME
    port = os.environ.get(METRICS_PORT_ENV, "").strip()
    if not port:
        return None
    if _METRICS_RUNTIME is None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{METRICS_PORT_ENV}={port!r} is not a port number (1-65535)")
        host = os.environ.get("SPEC2SHIP_METRICS_HOST", "0.0.0.0")
        _METRICS_RUNTIME = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=f"{host}:{port}", counters_total_suffix=True, durations_as_seconds=True)))
    return _METRICS_RUNTIME


def data_converter(codec: CodecSettings) -> DataConverter:
    """The pydantic converter; with keys configured, plus the encryption codec and failures whose message
    and stack trace travel as an encrypted payload too (Temporal otherwise stores them in the clear)."""
    # Imported here, as the telemetry below: this module stays light for the modules the workflow sandbox loads.
    from workers.codec.encryption import EncryptionCodec
    from workers.codec.keys import load_keyring

    keyring = load_keyring(codec)
    if keyring is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keyring),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def default_interceptors() -> list[Interceptor]:
    """The process's tracing interceptor, if it set telemetry up; else none."""
    # Imported here: this module stays light (tests import `find_binary` from modules the workflow sandbox loads).
    from activities.telemetry.setup import current_telemetry, temporal_tracing_interceptor

    telemetry = current_telemetry()
    return [temporal_tracing_interceptor(telemetry)] if telemetry is not None else []


def find_binary(name: str) -> Path | None:
    """The `temporal` / `temporal-test-server` binary installed next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None
