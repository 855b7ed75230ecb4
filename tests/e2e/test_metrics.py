"""``GET /metrics`` of a real ``rationale serve --workers 2``: counters summed across workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server, auth, instances, unique_id

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("metrics")
    running = Server(f"sqlite:///{workdir / 'metrics.db'}", workdir, workers=2)
    running.start(timeout=300)
    try:
        yield running
    finally:
        running.stop()


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, on a fresh connection (any worker may answer)."""
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_metrics_are_open_and_summed_across_workers(server: Server) -> None:
    before = scrape(server)
    rows = instances("credit-risk", 30)
    for row in rows:
        # A new connection each time: the kernel spreads them over both workers.
        body = {"model": "credit-risk", "decision_id": unique_id(), "instance": row}
        response = httpx.post(
            f"{server.url}/v1/explanations", json=body, headers=auth("backend"), timeout=60
        )
        assert response.status_code == 201, response.text
    bad = httpx.post(
        f"{server.url}/v1/explanations",
        json={"model": "credit-risk", "decision_id": unique_id(), "instance": {}},
        headers=auth("backend"),
        timeout=60,
    )
    assert bad.status_code == 422
    items = [{"decision_id": unique_id("m"), "instance": row} for row in rows[:20]]
    accepted = httpx.post(
        f"{server.url}/v1/batches",
        json={"model": "credit-risk", "items": items},
        headers=auth("backend"),
        timeout=60,
    )
    assert accepted.status_code == 202
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = httpx.get(
            f"{server.url}/v1/batches/{accepted.json()['id']}", headers=auth("backend")
        ).json()
        if status["status"] == "done":
            break
        time.sleep(0.2)
    assert status["succeeded"] == 20

    # Every scrape, whichever worker answers it, shows the sums of both workers.
    for _ in range(6):
        after = scrape(server)
        created = total(
            after, "rationale_http_requests_total", route="/v1/explanations", status="201"
        ) - total(before, "rationale_http_requests_total", route="/v1/explanations", status="201")
        assert created == 30
        assert (
            total(after, "rationale_http_requests_total", route="/v1/explanations", status="422")
            - total(before, "rationale_http_requests_total", route="/v1/explanations", status="422")
            == 1
        )
        written = total(after, "rationale_records_written_total", type="explanation") - total(
            before, "rationale_records_written_total", type="explanation"
        )
        assert written == 50
        assert (
            total(after, "rationale_batch_items_total", state="succeeded")
            - total(before, "rationale_batch_items_total", state="succeeded")
            == 20
        )
        explained = total(after, "rationale_explanation_seconds_count", model="credit-risk")
        assert explained - total(before, "rationale_explanation_seconds_count") == 50
        assert total(after, "rationale_chain_append_seconds_count") > total(
            before, "rationale_chain_append_seconds_count"
        )
        latency = total(
            after, "rationale_http_request_duration_seconds_count", route="/v1/explanations"
        )
        assert (
            latency
            - total(
                before, "rationale_http_request_duration_seconds_count", route="/v1/explanations"
            )
            == 31
        )
        assert ("rationale_batch_queue_depth", ()) in after
        assert after[("rationale_batch_queue_depth", ())] == 0

    # Both workers wrote samples into the shared multiprocess folder.
    assert server.process is not None
    # Workers are forked from the fork server, so they are the parent's grandchildren.
    children = psutil.Process(server.process.pid).children(recursive=True)
    folder = Path(children[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
    writers = {p.name.rsplit("_", 1)[-1].removesuffix(".db") for p in folder.glob("counter_*.db")}
    assert len({str(c.pid) for c in children} & writers) == 2
