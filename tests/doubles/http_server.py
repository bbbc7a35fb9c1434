"""Real uvicorn on 127.0.0.1 for the HTTP test doubles and apps under test: in a thread, or in this event loop.

The doubles are driven by synchronous and asynchronous clients alike, so `ServerThread` runs the
server on its own loop in a daemon thread; `served` runs it in the test's own loop when the app
under test must share that loop (a Temporal client made there, for instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn


class ServerThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 and a free port, in a daemon thread.

    TCP_NODELAY is set on the listening socket (accepted sockets inherit it): without it, every answer
    on a kept-alive connection waits ~40 ms for the client's delayed ACK (Nagle), which made each
    PyGithub call against the fake GitHub take 44 ms instead of under 1 ms.
    """

    def __init__(self, app: Any, name: str = "double") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.name = name
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"{name}-{self.port}")

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test double {self.name!r} on port {self.port} did not start; "
                                   "see the uvicorn log above for why")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextlib.asynccontextmanager
async def served(app: Any, timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """The app on real uvicorn (an ephemeral port, this event loop) and an HTTP client for it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
            yield client
    finally:
        server.should_exit = True
        await task
