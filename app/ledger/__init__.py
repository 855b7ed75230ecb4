"""Record store: tables, migrations, the append-only hash chain and its repository."""
