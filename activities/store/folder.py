"""The folder backend: blobs as files under the data folder (the embedded default).

Layout: `<root>/<readable part of the scope>-<hash of the scope>/<sha256>`, with a `.scope` file in each
scope folder naming the scope (workflow ids can be longer than a file name may be). Writes go to a
temporary file first and are renamed into place, so a reader never sees half a blob. Several workers
can share the folder (one machine, or a ReadWriteMany volume): names are content, so writers agree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from activities.store.base import BlobMissing, ScopeUsage, StoreMisconfigured, reference, verified
from contracts.store import BlobRef

SCOPE_FILE = ".scope"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def scope_folder_name(scope: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", scope).strip("-.")[:60] or "scope"
    return f"{readable}-{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return f"folder {self.root}"

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as error:
            raise StoreMisconfigured(f"the blob store folder {self.root} is not writable ({error.strerror}); set "
                                     "SPEC2SHIP_STORE_DIR to a folder this worker can write") from None

    def _scope_dir(self, scope: str) -> Path:
        return self.root / scope_folder_name(scope)

    def put(self, scope: str, data: bytes) -> BlobRef:
        ref = reference(scope, data)
        folder = self._scope_dir(scope)
        target = folder / ref.sha256
        if target.exists():
            return ref
        try:
            folder.mkdir(parents=True, exist_ok=True)
            marker = folder / SCOPE_FILE
            if not marker.exists():
                _write_atomically(marker, scope.encode())
            _write_atomically(target, data)
        except OSError as error:
            raise StoreMisconfigured(f"cannot write to the blob store folder {self.root} ({error.strerror}); "
                                     "check SPEC2SHIP_STORE_DIR and its free space") from None
        return ref

    def get(self, ref: BlobRef) -> bytes:
        path = self._scope_dir(ref.scope) / ref.sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"blob {ref.sha256[:12]} of {ref.scope!r} is not in {self.description}: removed by "
                              "the janitor, or written by a worker with another store (SPEC2SHIP_STORE*)") from None
        except OSError as error:
            raise StoreMisconfigured(f"cannot read {path} ({error.strerror})") from None
        return verified(ref, data, self.description)

    def scopes(self) -> list[ScopeUsage]:
        if not self.root.is_dir():
            return []
        found: list[ScopeUsage] = []
        for folder in sorted(self.root.iterdir()):
            marker = folder / SCOPE_FILE
            if not folder.is_dir() or not marker.is_file():
                continue
            blobs = [path for path in folder.iterdir() if _HEX64.match(path.name)]
            stats = [path.stat() for path in blobs]
            newest = max((stat.st_mtime for stat in stats), default=marker.stat().st_mtime)
            found.append(ScopeUsage(scope=marker.read_text(), blobs=len(blobs), bytes=sum(s.st_size for s in stats),
                                    newest=datetime.fromtimestamp(newest, UTC)))
        return found

    def delete_scope(self, scope: str) -> int:
        folder = self._scope_dir(scope)
        if not folder.is_dir():
            return 0
        count = sum(1 for path in folder.iterdir() if _HEX64.match(path.name))
        shutil.rmtree(folder)
        return count


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
