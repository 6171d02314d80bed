"""The node's stable identity: an Ed25519 key kept in `HOME/identity.key` (mode 0600).

The file holds the 32-byte seed as hex. The same seed gives the same libp2p peer id, so a node keeps
its id, and its record sequence, across restarts.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from memory.crypto import Keypair
from node.home import IDENTITY_FILE, ensure_home


class IdentityError(RuntimeError):
    """The identity file exists but cannot be used."""


def load_or_create(home: Path) -> Keypair:
    """Load the node key from `home`, creating it (mode 0600) on first use."""
    path = ensure_home(home) / IDENTITY_FILE
    if not path.exists():
        _create(path)
    return _load(path)


def _create(path: Path) -> None:
    keypair = Keypair.generate()
    try:
        # O_EXCL: two processes starting at once cannot both write a key; the loser reads the winner's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(keypair.seed.hex() + "\n")


def _load(path: Path) -> Keypair:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IdentityError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        seed = bytes.fromhex(text)
        return Keypair(seed)
    except ValueError as exc:
        raise IdentityError(f"{path} does not hold a 32-byte hex key") from exc
