"""A byte pipe between a Unix socket and a loopback port, started inside a preview's sandbox.

A sandboxed preview has its own network namespace: its 127.0.0.1 is not the worker's, and opening a
port to the worker would open the network. A Unix socket in a folder bound into the sandbox crosses
that line without a network: in the preview's sandbox this program listens on the socket and dials the
app's port; in a `run` criterion's sandbox it listens on the same port number and dials the socket, so
`PREVIEW_URL` works there unchanged.

It runs as `python -I -S -c <this file's text> LISTEN DIAL -- COMMAND...` (the project is not mounted in
the sandbox, so it needs nothing but the standard library). It binds LISTEN first, forks the server
and then execs COMMAND, so the command's first request finds the pipe open. When COMMAND ends,
bubblewrap ends the sandbox's PID namespace and the server with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from typing import NoReturn

_CHUNK = 65536
_BACKLOG = 64


def listen(address: str) -> socket.socket:
    """A listening socket for `unix:/path` or `tcp:HOST:PORT`."""
    server = _socket(address)
    if address.startswith("unix:"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address[5:])
        server.bind(address[5:])
    else:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(_host_port(address))
    server.listen(_BACKLOG)
    return server


def dial(address: str) -> socket.socket:
    client = _socket(address)
    try:
        client.connect(address[5:] if address.startswith("unix:") else _host_port(address))
    except OSError:
        client.close()
        raise
    return client


def _socket(address: str) -> socket.socket:
    if address.startswith("unix:"):
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if address.startswith("tcp:"):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raise ValueError(f"bridge address {address!r} is neither unix:/path nor tcp:HOST:PORT")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address[4:].rpartition(":")
    return host, int(port)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` ends, then pass the end on (HTTP/1.0 clients wait for it)."""
    with contextlib.suppress(OSError):
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _carry(incoming: socket.socket, target: str) -> None:
    """One connection: dial the target (a refusal, say before the app listens, just closes it) and pipe."""
    with incoming:
        try:
            outgoing = dial(target)
        except OSError:
            return
        with outgoing:
            back = threading.Thread(target=_pump, args=(outgoing, incoming), daemon=True)
            back.start()
            _pump(incoming, outgoing)
            back.join()


def serve(server: socket.socket, target: str) -> NoReturn:
    """Accept forever, one thread per connection; ends only with the sandbox."""
    while True:
        try:
            incoming, _ = server.accept()
        except OSError:
            continue
        threading.Thread(target=_carry, args=(incoming, target), daemon=True).start()


def main(argv: list[str]) -> NoReturn:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: bridge LISTEN DIAL -- COMMAND...")
    server = listen(argv[0])
    if os.fork() == 0:
        try:
            serve(server, argv[1])
        finally:
            os._exit(1)
    server.close()  # the server's copy lives on in the child; the command must not hold the port
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
