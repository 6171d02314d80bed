"""The node's home folder: identity key, memory database, caches, daemon files.

Resolution order: an explicit `--home DIR`, then `$SWARM_HOME`, then `~/.swarm`.
"""
from __future__ import annotations

import os
from pathlib import Path

MEMORY_FILE = "memory.duckdb"
API_FILE = "api.json"        # {"url", "pid"} of the running daemon's local app
TOKEN_FILE = "api.token"     # its API's bearer token (mode 0600)
IDENTITY_FILE = "identity.key"
CACHE_DIR = "cache"


def resolve_home(home: Path | str | None = None) -> Path:
    """The home folder to use (not created)."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("SWARM_HOME")
    return Path(env).expanduser() if env else Path.home() / ".swarm"


def ensure_home(home: Path) -> Path:
    """Create the home folder (owner-only) if it does not exist; return it."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def memory_path(home: Path) -> Path:
    """Where the node's DuckDB memory lives."""
    return home / MEMORY_FILE


def cache_dir(home: Path) -> Path:
    """Downloaded data, trained tokenizers and other rebuildable files."""
    return home / CACHE_DIR
