"""The embedded default's cache: Django's file cache with counting made atomic.

Rate limits count requests with `add` and `incr`. Django's file cache does both as a read and a
separate write, so requests in flight at once (several server threads or processes) read the
same count and a burst slips past its limit. Here they take turns under one file lock.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache


class LockingFileBasedCache(FileBasedCache):
    @contextmanager
    def _counting_lock(self):
        os.makedirs(self._dir, 0o700, exist_ok=True)
        with open(os.path.join(self._dir, "counting.lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        with self._counting_lock():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None):
        with self._counting_lock():
            return super().incr(key, delta, version)
