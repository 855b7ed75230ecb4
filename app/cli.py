"""The ``rationale`` command line: serve, migrate, local secrets, models, records."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from app.config import Settings
    from app.ledger.repository import Repository

app = typer.Typer(help="Rationale: explanations of automated decisions, and the proof.")
records_app = typer.Typer(help="Export and verify the record log.")
app.add_typer(records_app, name="records")
audit_app = typer.Typer(help="Fairness and impact audits over the stored decisions, as HTML.")
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(help="API keys: create (secret shown once), list, revoke.")
app.add_typer(keys_app, name="keys")
secrets_app = typer.Typer(help="The server secret.")
app.add_typer(secrets_app, name="secrets")
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
    from app.ledger import migrate
    from app.ledger.db import make_engine
    from app.runtime import workers as serving
    from app.runtime.logging import configure

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
    from app.ledger import migrate
    from app.ledger.db import make_engine

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
    checkpoint: Annotated[
        Path | None, typer.Option(help="A signed checkpoint the export must match (with --file).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="The note verifier key (text, or a file holding it).")
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 and name the first bad record when it fails. With
    --checkpoint and --public-key, also check the export's Merkle root against it."""
    from app.integrity import offline
    from app.ledger.chain import verify_rows

    if (seq is None) != (hash_ is None):
        console.print("[red]--seq and --hash go together (a kept head)[/red]")
        raise typer.Exit(2)
    if (checkpoint is None) != (public_key is None) or (checkpoint and file is None):
        console.print("[red]--checkpoint needs --public-key and --file[/red]")
        raise typer.Exit(2)
    kept = (seq, hash_.lower()) if seq is not None and hash_ is not None else None
    if file is not None:
        if not file.is_file():
            console.print(f"[red]--file: {file} is not a file[/red]")
            raise typer.Exit(2)
        rows, tree = offline.tree_of(offline.chain_rows(file))
        result = verify_rows(iter(rows), kept).as_dict()
        if checkpoint is not None and public_key is not None:
            signed = _signed_checkpoint(checkpoint, public_key)
            result["checkpoint"] = offline.check_export(tree, signed)
            result["ok"] = result["ok"] and result["checkpoint"]["ok"]
    else:
        result = _repository(database_url).verify(kept)
    sys.stdout.write(json.dumps(result) + "\n")
    raise typer.Exit(0 if result["ok"] else 1)


@records_app.command("inclusion")
def records_inclusion(
    proof: Annotated[Path, typer.Option(help="An inclusion proof (JSON, as the API answers).")],
    checkpoint: Annotated[Path, typer.Option(help="A signed checkpoint of the proof's size.")],
    public_key: Annotated[str, typer.Option(help="The note verifier key (text or file).")],
    record_hash: Annotated[
        str | None, typer.Option(help="The record's hash as you hold it (default: the proof's).")
    ] = None,
) -> None:
    """Verify offline that a record is in the log a signed checkpoint commits to."""
    from app.integrity import offline

    signed = _signed_checkpoint(checkpoint, public_key)
    try:
        result = offline.check_inclusion(_json_file(proof, "--proof"), signed, record_hash)
    except ValueError as exc:
        console.print(f"[red]--proof: {exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(result) + "\n")
    raise typer.Exit(0 if result["ok"] else 1)


@records_app.command("consistency")
def records_consistency(
    old: Annotated[Path, typer.Argument(help="The older signed checkpoint.")],
    new: Annotated[Path, typer.Argument(help="The newer signed checkpoint.")],
    public_key: Annotated[str, typer.Option(help="The note verifier key (text or file).")],
    proof: Annotated[
        Path | None, typer.Option(help="A consistency proof (JSON, as the API answers).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A chain export to compute the proof from instead.")
    ] = None,
) -> None:
    """Verify offline that the newer checkpoint's log extends the older one's."""
    from app.integrity import offline
    from app.ledger.chain import verify_rows

    if (proof is None) == (file is None):
        console.print("[red]give one of --proof or --file[/red]")
        raise typer.Exit(2)
    older = _signed_checkpoint(old, public_key)
    newer = _signed_checkpoint(new, public_key)
    if older.size > newer.size:
        console.print("[red]OLD is larger than NEW: give the older checkpoint first[/red]")
        raise typer.Exit(2)
    try:
        if proof is not None:
            hashes = offline.consistency_hashes(proof, older, newer)
            result = offline.check_consistency(older, newer, hashes)
        else:
            assert file is not None
            rows, tree = offline.tree_of(offline.chain_rows(file))
            chain = verify_rows(iter(rows)).as_dict()
            exported = offline.check_export(tree, newer)
            hashes = tree.consistency(older.size, newer.size) if older.size else []
            result = offline.check_consistency(older, newer, hashes)
            if not (chain["ok"] and exported["ok"]):
                result = result | {"ok": False, "reason": "the export does not match NEW"}
    except (ValueError, KeyError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(result) + "\n")
    raise typer.Exit(0 if result["ok"] else 1)


def _signed_checkpoint(path: Path, public_key: str) -> Any:
    from app.integrity import offline

    try:
        verifier = offline.read_verifier(public_key)
    except offline.NoteError as exc:
        console.print(f"[red]--public-key: {exc}[/red]")
        raise typer.Exit(2) from None
    if not path.is_file():
        console.print(f"[red]{path} is not a file[/red]")
        raise typer.Exit(2)
    try:
        return offline.read_checkpoint(path, verifier)
    except offline.NoteError as exc:
        sys.stdout.write(json.dumps({"ok": False, "reason": f"{path}: {exc}"}) + "\n")
        raise typer.Exit(1) from None


def _json_file(path: Path, option: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]{option}: {exc}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(value, dict):
        console.print(f"[red]{option}: not a JSON object[/red]")
        raise typer.Exit(2)
    return value


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
    from app.ledger.repository import RecordFilter
    from app.records.query import EXPORT_FORMATS, chain_lines, csv_lines, jsonl_lines

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
def explain(
    model: Annotated[str, typer.Option(help="Model name.")],
    instance: Annotated[Path, typer.Option(help="JSON file: the instance (raw features).")],
    report: Annotated[
        str, typer.Option(help="Print the report in this format: text, json, html or pdf.")
    ] = "text",
    lang: Annotated[str, typer.Option(help="Report language: en or ja.")] = "en",
    version: Annotated[str | None, typer.Option(help="Version (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the report here (pdf needs it).")] = None,
    store: Annotated[
        bool, typer.Option(help="Also store the explanation record (needs the service's settings).")
    ] = False,
    models_dir: Annotated[
        Path | None, typer.Option(help="Models folder (default: RATIONALE_MODELS_DIR or ./models).")
    ] = None,
) -> None:
    """Explain one instance and print its report: a model owner's one-off check."""
    import asyncio

    from app.errors import RationaleError
    from app.explanations.service import command_from_body
    from app.reports import service as report_service
    from app.reports.formats import FORMATS
    from app.reports.wording import LANGUAGES

    if report not in FORMATS or lang not in LANGUAGES:
        console.print(f"[red]--report is one of {FORMATS}; --lang one of {LANGUAGES}[/red]")
        raise typer.Exit(2)
    if report == "pdf" and out is None:
        console.print("[red]--report pdf needs --out FILE[/red]")
        raise typer.Exit(2)
    try:
        row = json.loads(instance.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]{instance}: {exc}[/red]")
        raise typer.Exit(2) from None
    if isinstance(row, dict) and isinstance(row.get("instance"), dict):
        row = row["instance"]  # a whole request body, as in examples/
    import uuid

    decision_id = f"local-{uuid.uuid4().hex[:16]}"
    body = {"model": model, "version": version, "decision_id": decision_id, "instance": row}
    body["options"] = {"lang": lang}
    command = command_from_body(body)
    contact = (
        os.environ.get(f"RATIONALE_REVIEW_CONTACT_{lang.upper()}")
        or os.environ.get("RATIONALE_REVIEW_CONTACT")
        or None
    )
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as the service runs: one BLAS/OpenMP thread
    try:
        if store:
            rendered = asyncio.run(_explain_stored(command, report, lang))
        else:
            loaded = _load_model(models_dir, model, version)
            rendered = report_service.one_off_report(loaded, command, report, lang, contact)
    except RationaleError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        for error in exc.errors:
            console.print(f"[red]  {error.field}: {error.message}[/red]")
        raise typer.Exit(1) from None
    if out is not None:
        out.write_bytes(rendered.content)
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(rendered.content.decode())


def _load_model(models_dir: Path | None, name: str, version: str | None) -> Any:
    from app.catalog.loader import LoadRefused
    from app.catalog.model import load_version

    root = models_dir or Path(os.environ.get("RATIONALE_MODELS_DIR") or "models")
    folders = [p for p in (root / name).glob("*") if (p / "model.yaml").is_file()]
    if version is not None:
        folders = [p for p in folders if p.name == version]
    if not folders:
        console.print(f"[red]no model {name!r} (version {version or 'any'}) under {root}[/red]")
        raise typer.Exit(2)
    folder = max(folders, key=lambda p: (p.name.isdigit(), int(p.name) if p.name.isdigit() else 0))
    allow_unsafe = os.environ.get("RATIONALE_ALLOW_UNSAFE_MODELS", "").lower() in ("1", "true")
    try:
        return load_version(folder, allow_unsafe=allow_unsafe)
    except LoadRefused as exc:
        console.print(f"[red]{folder}: {exc}[/red]")
        raise typer.Exit(2) from None


async def _explain_stored(command: Any, report: str, lang: str) -> Any:
    """Explain through the service's own path (stored record), then render its report."""
    from app.access.principals import Principal, Role
    from app.catalog.service import load_models
    from app.explanations.service import explain_and_record
    from app.ledger import migrate
    from app.reports import service as report_service
    from app.runtime.context import Context

    settings = _settings()
    ctx = Context.create(settings)
    try:
        migrate.upgrade(ctx.engine)
        load_models(ctx)
        principal = Principal("local-cli", Role.ADMIN)
        result = await explain_and_record(ctx, principal, command)
        view = result.view
        loaded = ctx.catalog.get(view["model"]["name"], view["model"]["version"])
        assert loaded is not None
        console.print(f"stored explanation record {view['id']} (seq {view['record']['seq']})")
        return report_service.render_report(
            loaded,
            view,
            report,
            lang,
            settings.review_contact_for(lang),
            report_service.counterfactual(loaded, view["input"]),
        )
    finally:
        ctx.close()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="Who or what holds it (1-128 characters).")],
    database_url: Annotated[str | None, typer.Option(help="Database (default: settings).")] = None,
) -> None:
    """Create an API key; its secret is printed once (only its SHA-256 is stored)."""
    from app.access import service as keys
    from app.access.principals import Role

    if role not in ROLES:
        console.print(f"[red]--role: one of {', '.join(ROLES)}[/red]")
        raise typer.Exit(2)
    if not 1 <= len(name) <= 128:
        console.print("[red]--name: 1 to 128 characters[/red]")
        raise typer.Exit(2)
    secret, stored = keys.create_key(_migrated(database_url), name, Role(role))
    sys.stdout.write(json.dumps(stored.as_dict() | {"secret": secret}) + "\n")
    console.print("the secret is shown once: keep it now")


@keys_app.command("list")
def keys_list(
    database_url: Annotated[str | None, typer.Option(help="Database (default: settings).")] = None,
) -> None:
    """Every created key (revoked ones included) and the environment's bootstrap keys."""
    from app.access import service as keys
    from app.access.principals import parse_api_keys

    for stored in keys.list_keys(_migrated(database_url)):
        sys.stdout.write(json.dumps(stored.as_dict() | {"source": "created"}) + "\n")
    try:
        bootstrap = parse_api_keys(os.environ.get("RATIONALE_API_KEYS", ""))
    except ValueError:
        bootstrap = {}
    for principal in bootstrap.values():
        item = {"key_id": principal.key_id, "role": principal.role.value, "source": "environment"}
        sys.stdout.write(json.dumps(item) + "\n")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (as `keys list` shows).")],
    database_url: Annotated[str | None, typer.Option(help="Database (default: settings).")] = None,
) -> None:
    """Revoke a created key; every worker refuses it within seconds."""
    from app.access import service as keys

    if not keys.revoke_key(_migrated(database_url), key_id):
        console.print(f"[red]no active created key with id {key_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@secrets_app.command("rotate")
def secrets_rotate(
    new_secret_file: Annotated[
        Path, typer.Option(help="A file holding the new secret (32+ characters).")
    ],
) -> None:
    """Move to a new server secret: every subject key re-wrapped, the subject-id key kept,
    checkpoint signing moved to the new key (the old one's checkpoints still verify by
    key id). Stop the servers first; start them with the new RATIONALE_SECRET_KEY."""
    from app.access import secrets as server_secrets

    settings = _settings()
    if not new_secret_file.is_file():
        console.print(f"[red]--new-secret-file: {new_secret_file} is not a file[/red]")
        raise typer.Exit(2)
    new_secret = new_secret_file.read_text().strip()
    old_secret = settings.secret_key.get_secret_value()
    if len(new_secret) < 32 or new_secret == old_secret:
        console.print("[red]--new-secret-file: 32+ characters, other than the current secret[/red]")
        raise typer.Exit(2)
    repository = _migrated(settings.database_url)
    try:
        details = server_secrets.rotate(repository, old_secret, new_secret, settings.log_origin)
    except server_secrets.WrongSecret as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    sys.stdout.write(json.dumps(details) + "\n")
    console.print("rotated: restart the servers with the new RATIONALE_SECRET_KEY")


def _migrated(database_url: str | None) -> Repository:
    from app.ledger import migrate

    repository = _repository(database_url)
    migrate.upgrade(repository.engine)
    return repository


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes (1: solo).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve Prometheus metrics of every worker process on this port "
            "(default RATIONALE_WORKER_METRICS_PORT; unset: none).",
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(help="Interface of the metrics port (default RATIONALE_WORKER_METRICS_HOST)."),
    ] = None,
) -> None:
    """Run a Celery batch worker on RATIONALE_BROKER_URL, sharing the record store."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    settings = _settings()
    if not settings.broker_url:
        console.print("[red]RATIONALE_BROKER_URL: a worker needs a broker (e.g. redis://)[/red]")
        raise typer.Exit(2)
    port = metrics_port if metrics_port is not None else settings.worker_metrics_port
    metrics_dir = None
    if port is not None:
        from app.runtime import multiprocess as metrics_folder

        # The pool's processes write their samples into a folder of this worker's own; the
        # variable must be set before prometheus_client is imported (by app.batches).
        metrics_dir = metrics_folder.create("worker")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from app.batches.celery_worker import run_worker
    from app.runtime.logging import configure

    configure(settings.log_json)
    try:
        run_worker(
            settings, concurrency, loglevel, port, metrics_host or settings.worker_metrics_host
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


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
    from app.batches.client import BatchClient, ClientError, read_items

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
    from app.batches.client import BatchClient, ClientError

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
    from app.ledger.db import make_engine
    from app.ledger.repository import Repository

    url = database_url or os.environ.get("RATIONALE_DATABASE_URL") or "sqlite:///./var/rationale.db"
    return Repository(make_engine(url))


def _audit(out: Path, compute: Any, render: Any, endpoint: str, filters: dict[str, Any]) -> None:
    """Load the models, stream the records with a progress bar, write the HTML report, and
    append the access record an audit read owes (key id ``local-cli``, role admin)."""
    import asyncio

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app.access.principals import Principal, Role
    from app.catalog.service import load_models
    from app.errors import RationaleError
    from app.ledger import migrate
    from app.records.service import log_access
    from app.runtime.context import Context

    ctx = Context.create(_settings())
    try:
        if not migrate.is_current(ctx.engine):
            console.print("the database schema is not migrated; run `rationale migrate-db`")
            raise typer.Exit(2)
        load_models(ctx)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("reading decisions: 0", total=None)

            def advance(seen: int) -> None:
                progress.update(task, description=f"reading decisions: {seen}")

            try:
                figures = compute(ctx, advance)
            except RationaleError as exc:
                console.print(f"[red]{exc}[/red] {getattr(exc, 'errors', '')}")
                raise typer.Exit(2) from exc
        principal = Principal("local-cli", Role.ADMIN)
        asyncio.run(log_access(ctx, principal, endpoint, [], filters=filters))
        out.write_text(render(figures))
        console.print(f"{figures.get('decisions', 0)} decisions; report written to {out}")
    finally:
        ctx.close()


@audit_app.command("fairness")
def audit_fairness(
    model: Annotated[str, typer.Option(help="Model name.")],
    attribute: Annotated[str, typer.Option(help="A protected feature or attribute.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    version: Annotated[str | None, typer.Option(help="Version (default: latest).")] = None,
    since: Annotated[str | None, typer.Option(help="Start: an RFC 3339 time or a date.")] = None,
    until: Annotated[str | None, typer.Option(help="End: an RFC 3339 time or a date.")] = None,
) -> None:
    """Group fairness figures of a model's stored decisions, as a self-contained HTML file."""
    from app.fairness.render import fairness_html
    from app.fairness.service import AuditScope, compute_fairness

    scope = AuditScope(model, version, since, until)
    filters = {"model": model, "version": version, "attribute": attribute}
    _audit(
        out,
        lambda ctx, advance: compute_fairness(ctx, scope, attribute, advance),
        fairness_html,
        "rationale audit fairness",
        {k: v for k, v in (filters | {"since": since, "until": until}).items() if v},
    )


@audit_app.command("impact")
def audit_impact(
    model: Annotated[str, typer.Option(help="Model name.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    version: Annotated[str | None, typer.Option(help="Version (default: latest).")] = None,
    since: Annotated[str | None, typer.Option(help="Start: an RFC 3339 time or a date.")] = None,
    until: Annotated[str | None, typer.Option(help="End: an RFC 3339 time or a date.")] = None,
    bucket: Annotated[str, typer.Option(help="day or week.")] = "day",
) -> None:
    """A model's decisions, favourable rate and what weighs most over time, as HTML."""
    from app.fairness.render import impact_html
    from app.fairness.service import AuditScope, compute_impact

    if bucket not in ("day", "week"):
        raise typer.BadParameter("day or week", param_hint="--bucket")
    scope = AuditScope(model, version, since, until)
    filters = {"model": model, "version": version, "since": since, "until": until}
    _audit(
        out,
        lambda ctx, advance: compute_impact(ctx, scope, bucket, advance),  # type: ignore[arg-type]
        impact_html,
        "rationale audit impact",
        {k: v for k, v in (filters | {"bucket": bucket}).items() if v},
    )


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
