"""How a preview refers to one Kubernetes object, and the one object every preview starts with: its namespace."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.preview.vcluster.naming import PreviewIdentity


class ObjectRef(BaseModel):
    """apiVersion, kind, name and (for namespaced kinds) namespace: enough to get or delete one object."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def ref_of(obj: dict[str, Any], default_namespace: str | None = None) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=meta.get("namespace") or default_namespace,
    )


def namespace_object(identity: PreviewIdentity) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": identity.namespace, "labels": identity.labels(), "annotations": identity.annotations()},
    }


def namespace_ref(identity: PreviewIdentity) -> ObjectRef:
    return ObjectRef(api_version="v1", kind="Namespace", name=identity.namespace)
