"""A per-key request rate limit (token bucket per key id, per worker process; off unless
``RATIONALE_RATE_LIMIT_PER_MINUTE`` is set)."""

from __future__ import annotations

import math
import threading
import time

from app.errors import RateLimited


class RateLimiter:
    """``per_minute`` requests a minute per key, in bursts of up to ``per_minute``."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for the key, or raise 429 with the seconds until one is back."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise RateLimited(
                    f"this key is limited to {self.per_minute} requests a minute", retry_after=wait
                )
            self._buckets[key] = (tokens - 1.0, now)


_limiters: dict[tuple[int, int], RateLimiter] = {}


def limiter(per_minute: int, scope: object) -> RateLimiter:
    """The limiter of one app (``scope``: its context) at a configured rate."""
    slot = (id(scope), per_minute)
    found = _limiters.get(slot)
    if found is None:
        found = _limiters.setdefault(slot, RateLimiter(per_minute))
    return found
