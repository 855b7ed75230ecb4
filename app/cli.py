"""The ``rationale`` command line: serve, migrate, local secrets, models, records."""

from __future__ import annotations

import json
import os
import secrets
import sys
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
keys_app = typer.Typer(help="API keys: create (secret shown once), list, revoke.")
app.add_typer(keys_app, name="keys")
secrets_app = typer.Typer(help="The server secret.")
app.add_typer(secrets_app, name="secrets")
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
    checkpoint: Annotated[
        Path | None, typer.Option(help="A signed checkpoint the export must match (with --file).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="The note verifier key (text, or a file holding it).")
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 and name the first bad record when it fails. With
    --checkpoint and --public-key, also check the export's Merkle root against it."""
    from app import offline
    from app.store.chain import verify_rows

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
    from app import offline

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
    from app import offline
    from app.store.chain import verify_rows

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
    from app import offline

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


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="Who or what holds it (1-128 characters).")],
    database_url: Annotated[str | None, typer.Option(help="Database (default: settings).")] = None,
) -> None:
    """Create an API key; its secret is printed once (only its SHA-256 is stored)."""
    from app.security.principals import Role
    from app.services import keys

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
    from app.security.principals import parse_api_keys
    from app.services import keys

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
    from app.services import keys

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
    from app.services import secrets as server_secrets

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
    from app.store import migrate

    repository = _repository(database_url)
    migrate.upgrade(repository.engine)
    return repository


def _repository(database_url: str | None) -> Repository:
    from app.store.db import make_engine
    from app.store.repository import Repository

    url = database_url or os.environ.get("RATIONALE_DATABASE_URL") or "sqlite:///./var/rationale.db"
    return Repository(make_engine(url))


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
