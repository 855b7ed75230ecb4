"""The ``rationale`` command line: serve, migrate, local secrets, models, records."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from app.config import Settings
    from app.store.repository import Repository

app = typer.Typer(help="Rationale: explanations of automated decisions, and the proof.")
records_app = typer.Typer(help="Export and verify the record log.")
app.add_typer(records_app, name="records")
batch_app = typer.Typer(help="Submit batches to a running service and fetch their results.")
app.add_typer(batch_app, name="batch")
console = Console(stderr=True)

ROLES = ("backend", "support", "auditor", "admin")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Migrate the database once, then serve the API with N worker processes."""
    # One BLAS thread per worker: explanations are parallel across requests, not within.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from app import serving
    from app.logging import configure
    from app.store import migrate
    from app.store.db import make_engine

    settings = _settings()
    configure(settings.log_json)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    console.print(f"Rationale serving on http://{host}:{port} ({workers} worker(s))")
    serving.run(host, port, workers)


@app.command()
def migrate_db() -> None:
    """Bring the database schema to the newest revision."""
    from app.store import migrate
    from app.store.db import make_engine

    engine = make_engine(_settings().database_url)
    migrate.upgrade(engine)
    console.print("schema is current")


@app.command("local-secrets")
def local_secrets(
    folder: Annotated[Path, typer.Option(help="Where to keep them.")] = Path("var"),
) -> None:
    """Create a local server secret and one API key per role under ./var/ (once)."""
    folder.mkdir(parents=True, exist_ok=True)
    secret_file, keys_file = folder / "secret_key", folder / "api_keys"
    if not secret_file.exists() and not os.environ.get("RATIONALE_SECRET_KEY"):
        _write_private(secret_file, secrets.token_urlsafe(48))
        console.print(f"created a local server secret in {secret_file}")
    if not keys_file.exists() and not os.environ.get("RATIONALE_API_KEYS"):
        pairs = ",".join(f"{secrets.token_urlsafe(24)}:{role}" for role in ROLES)
        _write_private(keys_file, pairs)
        console.print(f"created local API keys ({', '.join(ROLES)}) in {keys_file}")
    if os.environ.get("RATIONALE_SECRET_KEY") is None:
        console.print(f"server secret: {secret_file}")
    if os.environ.get("RATIONALE_API_KEYS") is None:
        console.print(f"API keys (secret:role, comma-separated): {keys_file}")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@records_app.command("verify")
def records_verify(
    database_url: Annotated[str | None, typer.Option(help="Database to verify.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A chain export (JSONL) to verify offline.")
    ] = None,
    seq: Annotated[int | None, typer.Option(help="Seq of a head kept earlier.")] = None,
    hash_: Annotated[str | None, typer.Option("--hash", help="Hash of that head.")] = None,
) -> None:
    """Recompute the hash chain; exit 1 and name the first bad record when it fails."""
    from app.store.chain import verify_rows

    if (seq is None) != (hash_ is None):
        console.print("[red]--seq and --hash go together (a kept head)[/red]")
        raise typer.Exit(2)
    kept = (seq, hash_.lower()) if seq is not None and hash_ is not None else None
    if file is not None:
        if not file.is_file():
            console.print(f"[red]--file: {file} is not a file[/red]")
            raise typer.Exit(2)
        result = verify_rows(_chain_file_rows(file), kept).as_dict()
    else:
        result = _repository(database_url).verify(kept)
    sys.stdout.write(json.dumps(result) + "\n")
    raise typer.Exit(0 if result["ok"] else 1)


@records_app.command("export")
def records_export(
    database_url: Annotated[str | None, typer.Option(help="Database to export.")] = None,
    format_: Annotated[
        str, typer.Option("--format", help="chain (stored bytes), jsonl or csv.")
    ] = "chain",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
) -> None:
    """Export the record log offline. ``chain`` is every stored document byte for byte
    (what ``records verify --file`` checks); ``jsonl``/``csv`` are the explanation
    records' clear parts (sealed parts withheld: no person's data leaves unlogged)."""
    from app.services.query import EXPORT_FORMATS, chain_lines, csv_lines, jsonl_lines
    from app.store.repository import RecordFilter

    if format_ not in EXPORT_FORMATS:
        console.print(f"[red]--format: one of {', '.join(EXPORT_FORMATS)}[/red]")
        raise typer.Exit(2)
    repository = _repository(database_url)
    head = repository.head()
    through = head[0] if head else 0
    if format_ == "chain":
        lines = chain_lines(repository, through)
    elif format_ == "csv":
        lines = csv_lines(repository, None, RecordFilter(), through)
    else:
        lines = jsonl_lines(repository, None, RecordFilter(), through)
    if out is None:
        for chunk in lines:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    else:
        with out.open("wb") as handle:
            for chunk in lines:
                handle.write(chunk)
    console.print(f"exported through seq {through}")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes (1: solo).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery batch worker on RATIONALE_BROKER_URL, sharing the record store."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from app.jobs.celery_app import run_worker
    from app.logging import configure

    settings = _settings()
    if not settings.broker_url:
        console.print("[red]RATIONALE_BROKER_URL: a worker needs a broker (e.g. redis://)[/red]")
        raise typer.Exit(2)
    configure(settings.log_json)
    run_worker(settings, concurrency, loglevel)


ServiceUrl = Annotated[
    str, typer.Option("--url", envvar="RATIONALE_URL", help="The service's base URL.")
]
ServiceKey = Annotated[
    str, typer.Option("--key", envvar="RATIONALE_API_KEY", help="A backend or admin API key.")
]


@batch_app.command("submit")
def batch_submit(
    file: Annotated[Path, typer.Argument(help="CSV: decision_id, subject_id?, features.")],
    model: Annotated[str, typer.Option(help="Model name.")],
    key: ServiceKey,
    version: Annotated[str | None, typer.Option(help="Model version (default latest).")] = None,
    method: Annotated[str, typer.Option(help="Explanation method.")] = "auto",
    url: ServiceUrl = "http://127.0.0.1:8000",
    wait: Annotated[bool, typer.Option(help="Follow progress until done.")] = True,
) -> None:
    """Submit a CSV of decisions as one batch and follow it with a progress bar."""
    from app.jobs.client import BatchClient, ClientError, read_items

    client = BatchClient(url, key)
    try:
        card = client.model_card(model, version)
        items = read_items(file, card)
        batch_id = client.submit(model, version, method, items)
        sys.stdout.write(batch_id + "\n")
        sys.stdout.flush()
        if not wait:
            return
        status = client.follow(batch_id, console)
    except ClientError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"batch {batch_id}: {status['status']}, {status['succeeded']} succeeded, "
        f"{status['failed']} failed"
    )
    raise typer.Exit(0 if status["status"] == "done" else 1)


@batch_app.command("results")
def batch_results(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    out: Annotated[Path, typer.Option(help="Output file (.jsonl or .csv).")],
    key: ServiceKey,
    format_: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from --out).")
    ] = None,
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Write a batch's records to a file, as JSONL or CSV."""
    from app.jobs.client import BatchClient, ClientError

    fmt = format_ or ("csv" if out.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("jsonl", "csv"):
        console.print("[red]--format: jsonl or csv[/red]")
        raise typer.Exit(2)
    try:
        count = BatchClient(url, key).download(batch_id, fmt, out)
    except ClientError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"wrote {count} records to {out}")


def _repository(database_url: str | None) -> Repository:
    from app.store.db import make_engine
    from app.store.repository import Repository

    url = database_url or os.environ.get("RATIONALE_DATABASE_URL") or "sqlite:///./var/rationale.db"
    return Repository(make_engine(url))


def _chain_file_rows(path: Path) -> Iterator[dict[str, Any]]:
    import base64
    import binascii

    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                yield {"document": base64.b64decode(item["document"]), "hash": item["hash"]}
            except (ValueError, KeyError, TypeError, binascii.Error):
                yield {"document": b"", "hash": f"line {number} is not a chain export line"}


def _settings() -> Settings:
    from pydantic import ValidationError

    from app.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "RATIONALE_" + "_".join(str(p) for p in error["loc"]).upper()
            console.print(f"[red]{field}: {error['msg']}[/red]")
        raise typer.Exit(2) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
