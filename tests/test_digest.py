"""The working-tree hash's background SHA-256: the digest of the batches in the order given, whatever the timing."""

from __future__ import annotations

import hashlib
import random
import threading

import pytest

from sgp_action.packaging.digest import BackgroundDigest


def digest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sgp-digest")]


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("sizes", [[], [0], [1, 2, 3], [3000] * 50, [1 << 20, 7, 300_000, 0, 5]])
def test_same_digest_as_hashlib_in_order(depth: int, sizes: list[int]) -> None:
    rng = random.Random(len(sizes) * 31 + depth)
    batches = [rng.randbytes(size) for size in sizes]
    digest = BackgroundDigest(b"prefix\n", depth=depth)
    for batch in batches:
        digest.update(bytearray(batch))
    assert digest.hexdigest() == hashlib.sha256(b"prefix\n" + b"".join(batches)).hexdigest()
    digest.close()
    assert not digest_threads()


def test_close_without_hexdigest_ends_the_thread() -> None:
    digest = BackgroundDigest()
    for _ in range(20):
        digest.update(bytes(100_000))
    digest.close()
    assert not digest_threads()


def test_waits_when_depth_batches_are_queued() -> None:
    digest = BackgroundDigest(depth=2)
    for _ in range(10):
        digest.update(bytes(50_000))
        assert len(digest._pending) <= 2
    assert digest.hexdigest() == hashlib.sha256(bytes(500_000)).hexdigest()
    digest.close()
