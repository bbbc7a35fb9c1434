"""The repository's preview manifests: read, checked, labelled, and given the PR's image.

The backend reads them from the head commit (`git archive`), the dry run from the working tree; both
hand the same `{path: text}` mapping to `load_manifests`. A container uses the PR's image when its image
repository is `preview.image`'s repository, whatever tag the manifest wrote, so the same manifests stay
deployable elsewhere (kustomize's `images:` rule, without kustomize).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from activities.forge.gitcli import Git, GitError

_SUFFIXES = (".yaml", ".yml", ".json")
_MAX_BYTES = 4 * 1024 * 1024  # manifests, not data: a larger folder is a mistake worth a clear message
_GIT_TIMEOUT_S = 60.0
DEFAULT_NAMESPACE = "default"
# Where containers sit in the kinds that run pods: the path to the pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


class ManifestError(ValueError):
    """A manifest folder that cannot be applied; the message names the file and document."""


class ServiceTarget(BaseModel):
    """The Service in the virtual cluster that the criteria probe."""

    name: str
    namespace: str
    ports: list[int]


class LoadedManifests(BaseModel):
    objects: list[dict[str, Any]]
    images_replaced: int = 0


def files_on_disk(repo: Path, folder: str) -> dict[str, str]:
    """Manifest files under `repo/folder` (the working tree), refusing links that lead out of the repository."""
    root = repo.resolve()
    base = (root / folder).resolve()
    if not base.is_relative_to(root):
        raise ManifestError(f"preview.manifests {folder!r} leads out of the repository {repo}")
    if not base.is_dir():
        raise ManifestError(f"preview.manifests {folder!r} is not a folder in {repo}")
    found: dict[str, str] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.endswith(_SUFFIXES):
                continue
            if not path.resolve().is_relative_to(root):
                raise ManifestError(f"{path.relative_to(root)}: a link that leads out of the repository")
            data = path.read_bytes()
            total += len(data)
            if total > _MAX_BYTES:
                raise ManifestError(f"preview.manifests {folder!r} holds more than {_MAX_BYTES} bytes of manifests")
            found[path.relative_to(root).as_posix()] = _text(path.relative_to(root).as_posix(), data)
    return found


def files_at_commit(repo: Path, sha: str, folder: str) -> dict[str, str]:
    """Manifest files under `folder` as they are in commit `sha`, whatever the working tree holds."""
    git = Git(repo, timeout_s=_GIT_TIMEOUT_S)
    try:
        listing = git.run("ls-tree", "-r", "-z", "--long", sha, "--", folder)
        found: dict[str, str] = {}
        total = 0
        for entry in sorted(item for item in listing.stdout.split("\0") if item):
            meta, name = entry.split("\t", 1)
            _mode, kind, blob, size = meta.split()
            if kind != "blob" or not name.endswith(_SUFFIXES):
                continue
            total += int(size)
            if total > _MAX_BYTES:
                raise ManifestError(f"preview.manifests {folder!r} holds more than {_MAX_BYTES} bytes of manifests")
            text = git.run("cat-file", "blob", blob).stdout
            if "\ufffd" in text:
                raise ManifestError(f"{name}: not UTF-8 text")
            found[name] = text
    except GitError as error:
        raise ManifestError(f"preview.manifests {folder!r} could not be read from commit {sha[:12]}: {error}") from None
    return found


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None


def load_manifests(files: dict[str, str], *, labels: dict[str, str], image_repository: str | None,
                   image: str | None) -> LoadedManifests:
    """Every object in the files, in file then document order, labelled and with the PR's image swapped in."""
    objects: list[dict[str, Any]] = []
    for path in sorted(files):
        try:
            documents = list(yaml.safe_load_all(files[path]))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ManifestError(f"{path}:{where} is not valid YAML: {getattr(error, 'problem', error)}") from None
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            for obj in _expand_lists(document, f"{path}: document {index}"):
                objects.append(_checked(obj, f"{path}: document {index}"))
    replaced = 0
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        if image is not None and image_repository is not None:
            replaced += _swap_images(obj, image_repository, image)
    return LoadedManifests(objects=objects, images_replaced=replaced)


def _expand_lists(document: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping), found {type(document).__name__}")
    kind = document.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        return [item for item in document["items"] if item is not None]
    return [document]


def _checked(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: a list item is not a Kubernetes object")
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise ManifestError(f"{where}: has no {field}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError(f"{where}: {obj['kind']} has no metadata.name")
    if meta.get("generateName"):
        raise ManifestError(f"{where}: {obj['kind']} uses generateName, which server-side apply cannot create")
    return obj


def image_repository_of(image: str) -> str:
    """`registry/path` of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _swap_images(obj: dict[str, Any], repository: str, image: str) -> int:
    path = _POD_SPEC_PATHS.get(str(obj.get("kind")))
    if path is None:
        return 0
    spec: Any = obj
    for key in path:
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return 0
    count = 0
    for list_name in _CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            uses = isinstance(container, dict) and isinstance(container.get("image"), str)
            if uses and image_repository_of(container["image"]) == repository:
                container["image"] = image
                count += 1
    return count


def service_target(objects: list[dict[str, Any]], name: str) -> ServiceTarget | None:
    """The Service called `name` among the manifests, with the namespace it will land in."""
    for obj in objects:
        if obj.get("apiVersion") == "v1" and obj.get("kind") == "Service" and obj["metadata"]["name"] == name:
            ports = [p.get("port") for p in (obj.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
            return ServiceTarget(
                name=name,
                namespace=obj["metadata"].get("namespace") or DEFAULT_NAMESPACE,
                ports=[p for p in ports if isinstance(p, int)],
            )
    return None
