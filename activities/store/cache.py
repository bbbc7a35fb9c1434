"""A bounded in-process cache in front of a store: blobs never change, so a cached copy is always right.

An agent's conversation is read back at every model call; with the cache, a worker fetches only the
messages it has not seen, not the whole conversation each time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from activities.store.base import BlobStore, StoreLayer
from contracts.store import BlobRef

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


class CachingStore(StoreLayer):
    def __init__(self, inner: BlobStore, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        super().__init__(inner)
        self.max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, scope: str, data: bytes) -> BlobRef:
        ref = self.inner.put(scope, data)
        self._keep(ref, data)
        return ref

    def get(self, ref: BlobRef) -> bytes:
        key = (ref.scope, ref.sha256)
        with self._lock:
            data = self._held.get(key)
            if data is not None:
                self._held.move_to_end(key)
                return data
        data = self.inner.get(ref)  # verified by the backend
        self._keep(ref, data)
        return data

    def delete_scope(self, scope: str) -> int:
        with self._lock:
            for key in [key for key in self._held if key[0] == scope]:
                self._size -= len(self._held.pop(key))
        return self.inner.delete_scope(scope)

    def _keep(self, ref: BlobRef, data: bytes) -> None:
        if len(data) > self.max_bytes // 8:
            return  # one large blob must not flush everything else
        key = (ref.scope, ref.sha256)
        with self._lock:
            if key in self._held:
                self._held.move_to_end(key)
                return
            self._held[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, dropped = self._held.popitem(last=False)
                self._size -= len(dropped)
