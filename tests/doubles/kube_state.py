"""The state of a fake Kubernetes API server: objects, their lifecycle and the rules a real server enforces.

What it keeps faithful, because the preview backend depends on it: 201 on create and 409 when the name is
taken, 404 into a missing namespace and 403 into a terminating one, label selectors, server-side apply
(create or update, a field manager required, fields the manager stopped applying removed), JSON merge
patches, deletion with finalizers (the object waits with a deletionTimestamp until they are cleared) and
namespace termination (contents deleted first, then the namespace). Custom resources are checked
against the published CRD schema before they are stored, as the real server checks `openAPIV3Schema`.

What it does not do: admission webhooks, defaulting, field-level ownership conflicts (a forced apply is
assumed), watch, resourceVersion preconditions, strategic merge (treated as a JSON merge patch).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema

from doubles.kube_selectors import parse_selector

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # api_version, kind, namespace ('' when cluster-scoped), name


@dataclass(frozen=True)
class KindInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool
    schema: dict[str, Any] | None = None

    @property
    def group_version(self) -> str:
        return self.api_version


CORE_KINDS = [
    KindInfo("v1", "Namespace", "namespaces", False),
    KindInfo("v1", "Secret", "secrets", True),
    KindInfo("v1", "Service", "services", True),
    KindInfo("v1", "Pod", "pods", True),
    KindInfo("v1", "Event", "events", True),
    KindInfo("v1", "ConfigMap", "configmaps", True),
    KindInfo("v1", "ServiceAccount", "serviceaccounts", True),
    KindInfo("apps/v1", "Deployment", "deployments", True),
    KindInfo("apps/v1", "StatefulSet", "statefulsets", True),
]


class ApiError(Exception):
    """Answered to the client as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _prune(target: Any, previous: Any, current: Any) -> Any:
    """Drop from `target` the fields `previous` applied and `current` no longer applies (maps only)."""
    if not (isinstance(target, dict) and isinstance(previous, dict)):
        return target
    result = dict(target)
    for key, value in previous.items():
        if not isinstance(current, dict) or key not in current:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _prune(result.get(key), value, current[key])
    return result


@dataclass
class FakeCluster:
    """One fake cluster's objects. Thread-safe: the HTTP server and the controller double share it."""

    name: str = "host"
    kinds: list[KindInfo] = field(default_factory=lambda: list(CORE_KINDS))
    git_version: str = "v1.31.0"
    version_answers: bool = True
    objects: dict[Key, Obj] = field(default_factory=dict)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    refuse_delete: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, name) -> HTTP status
    fail_writes: int = 0  # when set, every create and apply answers this status (a broken API server)
    requests: list[tuple[str, str, str, str]] = field(default_factory=list)  # method, path, query, content type
    applied: dict[tuple[Key, str], Obj] = field(default_factory=dict)  # last config applied per manager
    on_change: list[Callable[[], None]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _version: int = 1

    # --- kinds -----------------------------------------------------------------------------------

    def kind_by_plural(self, api_version: str, plural: str) -> KindInfo:
        for info in self.kinds:
            if info.api_version == api_version and info.plural == plural:
                return info
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural}.{api_version})")

    def kind_info(self, api_version: str, kind: str) -> KindInfo:
        for info in self.kinds:
            if info.api_version == api_version and info.kind == kind:
                return info
        raise ApiError(404, "NotFound", f"no kind {kind} in {api_version}")

    def group_versions(self) -> set[str]:
        return {info.api_version for info in self.kinds}

    # --- reading ---------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            found = self.objects.get((api_version, kind, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None, selector: str | None = None) -> list[Obj]:
        try:
            wanted = parse_selector(selector)
        except ValueError as error:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {error}") from None
        with self.lock:
            return [
                copy.deepcopy(obj)
                for (av, k, ns, _), obj in sorted(self.objects.items())
                if av == api_version and k == kind and (namespace is None or ns == namespace)
                and wanted((obj.get("metadata") or {}).get("labels") or {})
            ]

    # --- writing ---------------------------------------------------------------------------------

    def create(self, obj: Obj, namespace: str = "") -> Obj:
        info = self.kind_info(obj.get("apiVersion", ""), obj.get("kind", ""))
        if self.fail_writes:
            raise ApiError(self.fail_writes, "InternalError", "etcdserver: request timed out (set by the test)")
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{info.kind}: metadata.name: Required value")
        ns = (meta.get("namespace") or namespace) if info.namespaced else ""
        if info.namespaced and meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace of the URL")
        with self.lock:
            self._check_namespace(info, ns)
            key = (info.api_version, info.kind, ns, name)
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{info.plural} "{name}" already exists')
            stored = copy.deepcopy(obj)
            stored["metadata"] = {**meta, "uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1}
            if info.namespaced:
                stored["metadata"]["namespace"] = ns
            if info.kind == "Namespace":
                stored["status"] = {"phase": "Active"}
            self._validate(info, stored)
            self._store(key, stored)
            return copy.deepcopy(stored)

    def apply(self, obj: Obj, namespace: str, name: str, manager: str) -> tuple[Obj, bool]:
        """Server-side apply: create when missing, else update with what this manager applies now."""
        info = self.kind_info(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        ns = namespace if info.namespaced else ""
        key = (info.api_version, info.kind, ns, name)
        with self.lock:
            existing = self.objects.get(key)
            entry = {"manager": manager, "operation": "Apply", "apiVersion": info.api_version,
                     "time": _now(), "fieldsType": "FieldsV1", "fieldsV1": {}}
            if existing is None:
                created = self.create(copy.deepcopy(obj), ns)
                self.objects[key]["metadata"]["managedFields"] = [entry]
                self.applied[(key, manager)] = copy.deepcopy(obj)
                return self.get(*key) or created, True
            previous = self.applied.get((key, manager), {})
            updated = _prune(copy.deepcopy(existing), previous, obj)
            updated = merge_patch(updated, obj)
            updated["metadata"] = {**updated["metadata"], **{k: existing["metadata"][k] for k in (
                "uid", "creationTimestamp", "namespace") if k in existing["metadata"]}}
            fields = [f for f in existing["metadata"].get("managedFields", []) if f.get("manager") != manager]
            updated["metadata"]["managedFields"] = [*fields, entry]
            if updated.get("spec") != existing.get("spec"):
                updated["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
            self._validate(info, updated)
            self.applied[(key, manager)] = copy.deepcopy(obj)
            self._store(key, updated)
            return copy.deepcopy(updated), False

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        info = self.kind_info(api_version, kind)
        key = (api_version, kind, namespace if info.namespaced else "", name)
        with self.lock:
            existing = self.objects.get(key)
            if existing is None:
                raise ApiError(404, "NotFound", f'{info.plural} "{name}" not found')
            updated = merge_patch(existing, patch)
            self._validate(info, updated)
            self._store(key, updated)
            return copy.deepcopy(updated)

    def put(self, obj: Obj, namespace: str, name: str) -> Obj:
        info = self.kind_info(obj.get("apiVersion", ""), obj.get("kind", ""))
        key = (info.api_version, info.kind, namespace if info.namespaced else "", name)
        with self.lock:
            existing = self.objects.get(key)
            if existing is None:
                raise ApiError(404, "NotFound", f'{info.plural} "{name}" not found')
            stored = copy.deepcopy(obj)
            stored["metadata"] = {**existing["metadata"], **stored.get("metadata", {})}
            self._validate(info, stored)
            self._store(key, stored)
            return copy.deepcopy(stored)

    def set_status(self, api_version: str, kind: str, namespace: str, name: str, status: Obj) -> None:
        """What a controller does through the status subresource."""
        with self.lock:
            key = (api_version, kind, namespace, name)
            if key in self.objects:
                self.objects[key]["status"] = copy.deepcopy(status)
                self._changed()

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        info = self.kind_info(api_version, kind)
        key = (api_version, kind, namespace if info.namespaced else "", name)
        with self.lock:
            refused = self.refuse_delete.get((kind, name))
            if refused:
                raise ApiError(refused, "Forbidden" if refused == 403 else "InternalError",
                               f'{info.plural} "{name}" cannot be deleted (refused by the test)')
            existing = self.objects.get(key)
            if existing is None:
                raise ApiError(404, "NotFound", f'{info.plural} "{name}" not found')
            existing["metadata"].setdefault("deletionTimestamp", _now())
            if kind == "Namespace":
                existing["status"] = {"phase": "Terminating"}
            self._settle()
            return copy.deepcopy(existing)

    def remove_finalizer(self, api_version: str, kind: str, namespace: str, name: str, finalizer: str) -> None:
        with self.lock:
            obj = self.objects.get((api_version, kind, namespace, name))
            if obj is not None:
                obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers", []) if f != finalizer]
                self._settle()

    # --- rules -----------------------------------------------------------------------------------

    def _check_namespace(self, info: KindInfo, ns: str) -> None:
        if not info.namespaced:
            return
        namespace = self.objects.get(("v1", "Namespace", "", ns))
        if namespace is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f"unable to create new content in namespace {ns} "
                                             "because it is being terminated")

    def _validate(self, info: KindInfo, obj: Obj) -> None:
        if info.schema is None:
            return
        errors = sorted(jsonschema.Draft7Validator(info.schema).iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            where = ".".join(str(p) for p in errors[0].path) or "<root>"
            raise ApiError(422, "Invalid", f"{info.kind}.{info.api_version} is invalid: {where}: {errors[0].message}")

    def _store(self, key: Key, obj: Obj) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        self.objects[key] = obj
        self._changed()

    def _settle(self) -> None:
        """Finish deletions: objects without finalizers go; a terminating namespace empties, then goes."""
        while True:
            removed = False
            for key, obj in list(self.objects.items()):
                meta = obj["metadata"]
                if key[1] == "Namespace" and meta.get("deletionTimestamp"):
                    inside = [k for k in self.objects if k[2] == key[3] and k[1] != "Namespace"]
                    for inner in inside:
                        self.objects[inner]["metadata"].setdefault("deletionTimestamp", _now())
                    if not inside and not meta.get("finalizers"):
                        del self.objects[key]
                        removed = True
                elif meta.get("deletionTimestamp") and not meta.get("finalizers"):
                    del self.objects[key]
                    removed = True
            if not removed:
                break
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        for callback in self.on_change:
            callback()

    @property
    def resource_version(self) -> str:
        return str(self._version)
