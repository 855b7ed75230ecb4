"""Support-desk sessions: a small mutable table of state (who is signed in, until when)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from app.ledger.tables import desk_sessions


@dataclass(frozen=True)
class DeskSession:
    """A signed-in support-desk session."""

    token_hash: str
    key_id: str
    role: str
    csrf: str
    lang: str
    expires_at: str


class SessionStore:
    """Create, find, change and end sessions; expired ones are not found (and are swept)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, session: DeskSession, created_at: str) -> None:
        """Store a new session (and sweep expired ones)."""
        with self.engine.begin() as conn:
            conn.execute(delete(desk_sessions).where(desk_sessions.c.expires_at < created_at))
            conn.execute(
                insert(desk_sessions).values(
                    token_hash=session.token_hash,
                    key_id=session.key_id,
                    role=session.role,
                    csrf=session.csrf,
                    lang=session.lang,
                    created_at=created_at,
                    expires_at=session.expires_at,
                )
            )

    def find(self, token_hash: str, now: str) -> DeskSession | None:
        """The live session of a cookie's hash, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(desk_sessions).where(
                    desk_sessions.c.token_hash == token_hash, desk_sessions.c.expires_at > now
                )
            ).first()
        if row is None:
            return None
        return DeskSession(row.token_hash, row.key_id, row.role, row.csrf, row.lang, row.expires_at)

    def set_lang(self, token_hash: str, lang: str) -> None:
        """Remember the session's language."""
        with self.engine.begin() as conn:
            conn.execute(
                update(desk_sessions)
                .where(desk_sessions.c.token_hash == token_hash)
                .values(lang=lang)
            )

    def end(self, token_hash: str) -> None:
        """Sign out: the session is gone."""
        with self.engine.begin() as conn:
            conn.execute(delete(desk_sessions).where(desk_sessions.c.token_hash == token_hash))
