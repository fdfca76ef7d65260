"""A throwaway PostgreSQL for one benchmark."""

from __future__ import annotations

import tempfile
from pathlib import Path

from devtools import servers


def scratch_postgres(name: str, **settings) -> tuple[Path, servers.PostgresServer]:
    """Start a fresh cluster in a new temporary folder (readable by the server's user, which may
    not be ours); ``settings`` go to ``servers.start_postgres``. Returns the folder and the server."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    root.chmod(0o755)
    return root, servers.start_postgres(root / "pg", **settings)
