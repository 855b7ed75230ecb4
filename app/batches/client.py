"""The CLI's HTTP client for batches: read a CSV of decisions, submit, follow, download."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ID_COLUMNS = ("decision_id", "subject_id")


class ClientError(Exception):
    """A request the service refused, or a file that cannot be read; the message says why."""


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    fields = "; ".join(f"{e['field']}: {e['message']}" for e in body.get("errors") or [])
    return f"HTTP {response.status_code}: {body.get('detail', '')}" + (
        f" ({fields})" if fields else ""
    )


def _number(text: str, column: str, line: int) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise ClientError(f"line {line}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ClientError(f"line {line}, column {column}: {text!r} is not a finite number")
    return int(value) if value.is_integer() and "." not in text else value


def read_items(path: Path, card: dict[str, Any]) -> list[dict[str, Any]]:
    """Batch items from a CSV with a header: ``decision_id``, optional ``subject_id``, and
    one column per feature of the model card (numeric features parsed as numbers; an empty
    cell is left out, so the service names the missing feature)."""
    if not path.is_file():
        raise ClientError(f"{path} is not a file")
    numeric = {f["name"] for f in card["features"] if f["type"] == "numeric"}
    items = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "decision_id" not in reader.fieldnames:
            raise ClientError(f"{path}: the header needs a decision_id column")
        for line, row in enumerate(reader, start=2):
            instance: dict[str, Any] = {}
            for column, text in row.items():
                if column in ID_COLUMNS or column is None or text in (None, ""):
                    continue
                instance[column] = _number(text, column, line) if column in numeric else text
            item: dict[str, Any] = {"decision_id": row["decision_id"], "instance": instance}
            if row.get("subject_id"):
                item["subject_id"] = row["subject_id"]
            items.append(item)
    if not items:
        raise ClientError(f"{path} has no rows")
    return items


class BatchClient:
    """Talks to ``/v1/batches`` with an API key."""

    def __init__(self, url: str, key: str, timeout: float = 120) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        try:
            response = self.http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the service: {exc}") from None
        if response.status_code != 200:
            raise ClientError(_problem(response))
        body: dict[str, Any] = response.json()
        return body

    def model_card(self, model: str, version: str | None) -> dict[str, Any]:
        """The model version's card (its feature schema types the CSV's cells)."""
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "")
        return self._get(path)

    def submit(
        self, model: str, version: str | None, method: str, items: list[dict[str, Any]]
    ) -> str:
        """Submit the batch; its id."""
        body: dict[str, Any] = {"model": model, "method": method, "items": items}
        if version:
            body["version"] = version
        try:
            response = self.http.post("/v1/batches", json=body)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the service: {exc}") from None
        if response.status_code != 202:
            raise ClientError(_problem(response))
        batch_id: str = response.json()["id"]
        return batch_id

    def status(self, batch_id: str) -> dict[str, Any]:
        return self._get(f"/v1/batches/{batch_id}")

    def follow(self, batch_id: str, console: Console, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the batch is done or failed, drawing a progress bar."""
        status = self.status(batch_id)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"batch {batch_id[:8]}", total=status["items"], failed=0)
            while True:
                processed = status["succeeded"] + status["failed"]
                progress.update(task, completed=processed, failed=status["failed"])
                if status["status"] in ("done", "failed"):
                    return status
                time.sleep(poll)
                status = self.status(batch_id)

    def download(self, batch_id: str, fmt: str, out: Path) -> int:
        """Stream the batch's records into a file; how many records."""
        path = f"/v1/batches/{batch_id}/results/export"
        count = 0
        try:
            with self.http.stream("GET", path, params={"format": fmt}) as response:
                if response.status_code != 200:
                    response.read()
                    raise ClientError(_problem(response))
                with out.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        count += chunk.count(b"\n")
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the service: {exc}") from None
        if fmt == "csv":
            with out.open(newline="") as handle:
                count = sum(1 for _ in csv.DictReader(handle))
        return count
