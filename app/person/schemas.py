"""Schemas of links to the person's page (docs/person.md#links)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_DAYS = 180
"""Longest a link may last, in days."""


class LinkRequest(BaseModel):
    """How long the link lasts, in days (1 to 180; 30 unless given)."""

    model_config = ConfigDict(extra="forbid")

    expires_in_days: StrictInt = Field(default=30, ge=1, le=MAX_DAYS)


class IssuedLink(BaseModel):
    """A new link: the URL (its token is shown this once, only its hash is kept), the link's
    id (to revoke it, and as it appears in the access log) and its expiry."""

    url: str
    link_id: str
    expires_at: str


class RevokedLink(BaseModel):
    """A revoked link; revoking it again answers the same."""

    link_id: str
    revoked_at: str
