"""Report formats and their media types (no heavy imports: routes load this at start)."""

FORMATS = ("json", "html", "text", "pdf")
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
}
