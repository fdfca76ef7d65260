"""One actor per cache: a lock key in the Redis it maintains, as Redis's own locking recipe.

``SET maintenance:lock:<target> <holder> NX PX <ms>`` takes it only when no one holds it; it
expires by itself if its holder dies; it is released only by its holder (compare and delete in
one script). A second actor waits up to its budget, then leaves the cache alone, naming the holder.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class CacheBusy(RuntimeError):
    """Another actor holds the cache; the message names it."""


@contextmanager
def cache_lock(client, target: str, *, holder: str, hold_s: float, wait_s: float, poll_s: float = 1.0,
               sleep=time.sleep):
    key = f"maintenance:lock:{target}"
    deadline = time.monotonic() + wait_s
    while not client.set(key, holder, nx=True, px=int(hold_s * 1000)):
        if time.monotonic() >= deadline:
            other = client.get(key)
            other = other.decode() if isinstance(other, bytes) else other
            raise CacheBusy(f"{target} is being maintained by {other or 'an actor that has just let go'}; "
                            f"waited {wait_s:g}s, left alone this time")
        sleep(poll_s)
    try:
        yield
    finally:
        client.eval(_RELEASE, 1, key, holder)
