"""Key revocation delay (issue 19, docs/access.md#keys): how long a revoked key still works.

A ``rationale serve --workers 2`` on SQLite; per trial a key is created with the command
line (``rationale keys create``), used until both workers have accepted (and cached) it,
revoked with ``rationale keys revoke``, and then polled with requests each on a fresh
connection (the kernel spreads them over both workers) from before the revocation on. The
delay is from the revocation's commit (the ``revoked_at`` the store keeps) to the last 200
seen; polling goes on for twice the cache time after that, so a late 200 from either worker
would show. The setting that governs it is
``app.access.service.KEY_CACHE_SECONDS`` (a worker trusts what it read of a stored key for
that long).

Not part of ``make test``. ``python -m bench.keys`` runs it alone; ``python -m bench --only
keys`` as a section."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from app.access.service import KEY_CACHE_SECONDS
from bench.data import MODELS_DIR
from bench.server import RATIONALE, Server


def _cli(server: Server, *args: str) -> str:
    env = dict(server.env(), RATIONALE_DATABASE_URL=server.database_url)
    done = subprocess.run(
        [str(RATIONALE), *args, "--database-url", server.database_url],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return done.stdout.decode()


def _status(server: Server, secret: str) -> int:
    # A new client per request: a new connection, so both workers are asked.
    with httpx.Client(timeout=30) as client:
        return client.get(
            f"{server.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}
        ).status_code


def _trial(server: Server, quiet_for: float) -> dict[str, Any]:
    key = json.loads(_cli(server, "keys", "create", "--role", "backend", "--name", "bench"))
    secret = key["secret"]
    accepted = [_status(server, secret) for _ in range(40)]
    if set(accepted) != {200}:
        raise RuntimeError(f"a new key was not accepted: {sorted(set(accepted))}")
    # Poll all along (the command line takes a couple of seconds to start), so every
    # worker's cache is fresh when the revocation commits; the delay counts from the
    # commit time the store kept (``revoked_at``) to the last 200 seen.
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            status = _status(server, secret)
            seen.append((time.time(), status))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _cli(server, "keys", "revoke", key["key_id"])
    listed = [json.loads(line) for line in _cli(server, "keys", "list").splitlines() if line]
    revoked = next(k["revoked_at"] for k in listed if k["key_id"] == key["key_id"])
    revoked_at = datetime.fromisoformat(revoked.replace("Z", "+00:00")).timestamp()
    while True:
        time.sleep(0.2)
        last_ok = max((t for t, s in seen if s == 200), default=revoked_at)
        if time.time() - max(last_ok, revoked_at) >= quiet_for:
            break
    done.set()
    poller.join()
    odd = {s for _, s in seen} - {200, 401}
    if odd:
        raise RuntimeError(f"unexpected statuses {sorted(odd)}")
    after = [s for t, s in seen if t > revoked_at]
    return {
        "delay_s": round(max(last_ok - revoked_at, 0.0), 3),
        "requests_after_revocation": len(after),
        "accepted_after_revocation": after.count(200),
    }


def run_keys_bench(trials: int = 5, workers: int = 2) -> dict[str, Any]:
    """Revocation delay over ``trials`` create/use/revoke rounds on a 2-worker server."""
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        (models / "recidivism").mkdir(parents=True)
        (models / "recidivism" / "1").symlink_to(MODELS_DIR / "recidivism" / "1")
        with Server(workers=workers, models_dir=models) as server:
            results = [_trial(server, 2 * KEY_CACHE_SECONDS) for _ in range(trials)]
    delays = sorted(r["delay_s"] for r in results)
    out = {
        "workers": workers,
        "trials": trials,
        "key_cache_seconds": KEY_CACHE_SECONDS,
        "delays_s": delays,
        "p50_s": round(statistics.median(delays), 3),
        "max_s": delays[-1],
        "requests_per_trial": round(
            statistics.mean(r["requests_after_revocation"] for r in results)
        ),
        "accepted_after_revocation": [r["accepted_after_revocation"] for r in results],
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run_keys_bench(args.trials), indent=2))


if __name__ == "__main__":
    main()
