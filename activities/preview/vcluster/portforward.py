"""A local TCP port that leads to a pod's port through the API server, made with the kubernetes client.

`kubernetes.stream.portforward` gives one socket per websocket; kubectl-style forwarding needs one per
client connection, so each accepted connection opens its own. Threads copy bytes both ways; closing the
forwarder closes the listener and every connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from types import TracebackType
from typing import Any

from kubernetes import client as k8s
from kubernetes.stream import portforward

log = logging.getLogger(__name__)

_CHUNK = 65536
_ACCEPT_POLL_S = 0.1


class PortForwarder:
    """127.0.0.1:<local_port> → pod `namespace/pod`:`port`."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str, pod: str, port: int) -> None:
        self.api = k8s.CoreV1Api(api_client)
        self.namespace, self.pod, self.port = namespace, pod, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(_ACCEPT_POLL_S)  # close() must not wait on a blocked accept()
        self.local_port: int = self._listener.getsockname()[1]
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name=f"port-forward-{pod}-{port}")
        self._acceptor.start()

    def __enter__(self) -> PortForwarder:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()
        self._acceptor.join(timeout=2)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            forward = portforward(
                self.api.connect_get_namespaced_pod_portforward, self.pod, self.namespace, ports=str(self.port)
            )
            remote = forward.socket(self.port)
        except Exception as error:  # the API refused or the pod is gone: the client sees a closed connection
            log.warning("port-forward to %s/%s:%d failed: %s", self.namespace, self.pod, self.port, error)
            conn.close()
            return
        with self._lock:
            if self._closed.is_set():
                conn.close()
                remote.close()
                return
            self._open.update({conn, remote})
        threading.Thread(target=self._copy, args=(remote, conn), daemon=True).start()
        self._copy(conn, remote)

    def _copy(self, source: Any, sink: Any) -> None:
        """Copy until either side ends, then close both (HTTP/1.1 clients reconnect as needed)."""
        try:
            while chunk := source.recv(_CHUNK):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.difference_update({source, sink})
