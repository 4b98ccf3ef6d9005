"""The working-tree hash's SHA-256, fed on a thread of its own while the archive streams
(docs/build-context.md#the-working-tree-hash).

The thread that walks the tree and writes tar headers is what limits packaging many small files; hashing 100 MB on
it costs about a tenth of the run. hashlib releases the GIL while it hashes more than 2 KiB, so a single worker
thread hashes the batches in the order they were given while the walk goes on. At most `depth` batches wait, so
memory stays bounded however fast the walk is.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib

__all__ = ["BackgroundDigest"]


class BackgroundDigest:
    """SHA-256 of everything passed to `update`, in order, computed on one worker thread.

    `hexdigest()` waits for the queued batches; `close()` (also after an error) ends the thread, dropping what waits.
    The caller must not change a batch after passing it (pass `bytes`, or a `bytearray` it no longer writes to).
    """

    def __init__(self, prefix: bytes = b"", *, depth: int = 4) -> None:
        self._hash = hashlib.sha256(prefix)
        self._depth = depth
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sgp-digest")
        self._pending: collections.deque[concurrent.futures.Future[None]] = collections.deque()

    def update(self, data: bytes | bytearray) -> None:
        """Queue `data` to be hashed after everything queued before it; waits while `depth` batches wait."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._hash.update, data))

    def hexdigest(self) -> str:
        """The hex digest of all the data, once every queued batch is hashed."""
        while self._pending:
            self._pending.popleft().result()
        return self._hash.hexdigest()

    def close(self) -> None:
        """End the worker thread; batches not yet hashed are dropped."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
