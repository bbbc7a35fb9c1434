"""A small fake Kubernetes API server over real HTTP, for the official `kubernetes` client.

kmock (see CONTRACTS.md) cannot create Namespaces, answers PUT with 404 and has no label selectors; the
preview backend needs all three, plus server-side apply, pod logs and port-forward. This server speaks
those parts of the API with Kubernetes' paths, verbs, status codes and Status bodies; the rules live in
`kube_state.FakeCluster`. Port-forward is the websocket channel protocol (`v4.channel.k8s.io`) the
client speaks: each pod names, in the annotation `fake.spec2ship.dev/backend`, the local TCP address
that plays its container, since there is no container runtime here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from doubles.kube_state import ApiError, FakeCluster, KindInfo

BACKEND_ANNOTATION = "fake.spec2ship.dev/backend"
_VERBS = ["create", "delete", "get", "list", "patch", "update"]


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.status(), status_code=error.code)


def _discovery(cluster: FakeCluster, group_version: str) -> dict[str, Any]:
    resources = [
        {"name": info.plural, "singularName": info.kind.lower(), "namespaced": info.namespaced,
         "kind": info.kind, "verbs": _VERBS}
        for info in cluster.kinds if info.api_version == group_version
    ]
    if group_version == "v1":
        resources += [
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
             "verbs": ["create", "get"]},
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _list_body(cluster: FakeCluster, info: KindInfo, items: list[dict[str, Any]]) -> dict[str, Any]:
    if "/" not in info.api_version:  # built-in lists do not repeat apiVersion and kind per item
        items = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items]
    return {"apiVersion": info.api_version, "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": cluster.resource_version}, "items": items}


async def _body(request: Request) -> Any:
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        return yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as error:
        raise ApiError(400, "BadRequest", f"the body is not valid: {error}") from None


def _typed(body: Any, info: KindInfo) -> dict[str, Any]:
    """Create and update bodies may leave apiVersion and kind out (typed clients do): the URL says them."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body must be an object")
    if body.get("kind", info.kind) != info.kind or body.get("apiVersion", info.api_version) != info.api_version:
        raise ApiError(400, "BadRequest", f"the body is a {body.get('kind')}, the URL names {info.kind}")
    return {**body, "apiVersion": info.api_version, "kind": info.kind}


def kube_app(cluster: FakeCluster) -> Starlette:
    async def version(request: Request) -> Response:
        cluster.requests.append(("GET", "/version", "", ""))
        if not cluster.version_answers:
            return _error(ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request"))
        major, minor = cluster.git_version.lstrip("v").split(".")[:2]
        return JSONResponse({"major": major, "minor": minor, "gitVersion": cluster.git_version,
                             "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                             "platform": "linux/amd64", "goVersion": "go1.22", "compiler": "gc"})

    async def core_discovery(request: Request) -> Response:
        return JSONResponse(_discovery(cluster, "v1"))

    async def group_discovery(request: Request) -> Response:
        group_version = f"{request.path_params['group']}/{request.path_params['version']}"
        if group_version not in cluster.group_versions():
            return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))
        return JSONResponse(_discovery(cluster, group_version))

    async def core(request: Request) -> Response:
        return await _resource(request, "v1", request.path_params["rest"])

    async def grouped(request: Request) -> Response:
        group_version = f"{request.path_params['group']}/{request.path_params['version']}"
        return await _resource(request, group_version, request.path_params["rest"])

    async def _resource(request: Request, api_version: str, rest: str) -> Response:
        cluster.requests.append((request.method, request.url.path, request.url.query,
                                 request.headers.get("content-type", "")))
        try:
            return await _dispatch(request, api_version, [part for part in rest.split("/") if part])
        except ApiError as error:
            return _error(error)

    async def _dispatch(request: Request, api_version: str, parts: list[str]) -> Response:
        namespace: str | None = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        if not parts or len(parts) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        info = cluster.kind_by_plural(api_version, parts[0])
        if info.namespaced != (namespace is not None) and not (len(parts) == 1 and request.method == "GET"):
            raise ApiError(404, "NotFound", f"{info.plural} is {'' if info.namespaced else 'not '}namespaced")
        method = request.method
        if len(parts) == 1:
            if method == "GET":
                items = cluster.list(api_version, info.kind, namespace, request.query_params.get("labelSelector"))
                return JSONResponse(_list_body(cluster, info, items))
            if method == "POST":
                body = _typed(await _body(request), info)
                return JSONResponse(cluster.create(body, namespace or ""), status_code=201)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        name, ns = parts[1], namespace or ""
        if method == "GET":
            found = cluster.get(api_version, info.kind, ns, name)
            if found is None:
                raise ApiError(404, "NotFound", f'{info.plural} "{name}" not found')
            return JSONResponse(found)
        if method == "DELETE":
            return JSONResponse(cluster.delete(api_version, info.kind, ns, name))
        if method == "PUT":
            return JSONResponse(cluster.put(_typed(await _body(request), info), ns, name))
        if method == "PATCH":
            content_type = request.headers.get("content-type", "")
            body = await _body(request)
            if content_type.startswith("application/apply-patch"):
                manager = request.query_params.get("fieldManager")
                if not manager:
                    raise ApiError(400, "BadRequest", "PatchOptions.meta.k8s.io is invalid: fieldManager: "
                                                      "Required value: is required for apply patch")
                if not isinstance(body, dict) or body.get("kind") != info.kind:
                    raise ApiError(400, "BadRequest", "the body of an apply patch must be the object itself")
                stored, created = cluster.apply(body, ns, name, manager)
                return JSONResponse(stored, status_code=201 if created else 200)
            if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                return JSONResponse(cluster.patch(api_version, info.kind, ns, name, body))
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: "
                                                        f"{content_type}")
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    async def pod_log(request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        cluster.requests.append(("GET", request.url.path, request.url.query, ""))
        pod = cluster.get("v1", "Pod", namespace, name)
        if pod is None:
            return _error(ApiError(404, "NotFound", f'pods "{name}" not found'))
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = request.query_params.get("container")
        if container is None:
            if len(containers) != 1:
                return _error(ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                                          f"choose one of: {containers}"))
            container = containers[0]
        if container not in containers:
            return _error(ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}"))
        text = cluster.logs.get((namespace, name, container), "")
        if "tailLines" in request.query_params:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(request.query_params["tailLines"]):])
        if "limitBytes" in request.query_params:
            text = text.encode()[: int(request.query_params["limitBytes"])].decode("utf-8", errors="ignore")
        return PlainTextResponse(text)

    async def portforward(websocket: WebSocket) -> None:
        namespace, name = websocket.path_params["namespace"], websocket.path_params["name"]
        cluster.requests.append(("GET", websocket.url.path, websocket.url.query, "websocket"))
        offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
        await websocket.accept(subprotocol="v4.channel.k8s.io" if "v4.channel.k8s.io" in offered else None)
        port = int(websocket.query_params.get("ports", "0"))
        port_bytes = bytes([port & 0xFF, port >> 8])
        await websocket.send_bytes(b"\x00" + port_bytes)
        await websocket.send_bytes(b"\x01" + port_bytes)
        pod = cluster.get("v1", "Pod", namespace, name)
        declared = [p.get("containerPort") for c in (pod or {}).get("spec", {}).get("containers", [])
                    for p in c.get("ports", [])]
        backend = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(BACKEND_ANNOTATION)
        if pod is None or port not in declared or not backend:
            await websocket.send_bytes(b"\x01" + f"unable to forward port {port} to pod {name}".encode())
            await websocket.close()
            return
        host, _, backend_port = backend.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host, int(backend_port))
        except OSError as error:
            await websocket.send_bytes(b"\x01" + f"connection refused: {error}".encode())
            await websocket.close()
            return

        async def upstream() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    data = message.get("bytes") or b""
                    if data[:1] == b"\x00" and len(data) > 1:
                        writer.write(data[1:])
                        await writer.drain()

        async def downstream() -> None:
            while chunk := await reader.read(65536):
                await websocket.send_bytes(b"\x00" + chunk)

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await websocket.close()

    return Starlette(routes=[
        Route("/version", version),
        WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/portforward", portforward),
        Route("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log),
        Route("/api/v1", core_discovery),
        Route("/apis/{group}/{version}", group_discovery),
        Route("/api/v1/{rest:path}", core, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/apis/{group}/{version}/{rest:path}", grouped, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ])
