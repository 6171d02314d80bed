"""Checks on `swarm join`'s addresses before anything starts, each failure one line.

Listen addresses must be TCP multiaddrs on an address of this machine, and their port must be
free: py-libp2p 0.8.1 listens with SO_REUSEPORT (for hole punching), so a second node on a taken
port would start and share it silently; a plain bind without SO_REUSEPORT refuses a port another process listens on, which is
the check made here (racy only against a node started in the same instant).
Bootstrap peers come from `--bootstrap`, `$SWARM_BOOTSTRAP` (separated by commas or spaces) and
`HOME/bootstrap.txt` (one per line, `#` comments), each a multiaddr ending in `/p2p/PEER_ID`.
"""
from __future__ import annotations

import errno
import os
import re
import socket
from pathlib import Path

BOOTSTRAP_FILE = "bootstrap.txt"
HOSTPORT = re.compile(r"^\[?([0-9a-fA-F:.]+|localhost)\]?:(\d+)$")


class AddressError(ValueError):
    """A listen or bootstrap address is unusable; the message is one line."""


def _parse(text: str, what: str):
    import multiaddr

    try:
        return multiaddr.Multiaddr(text)
    except Exception:  # noqa: BLE001 - multiaddr raises several types for bad strings
        hint = ""
        match = HOSTPORT.match(text)
        if match:
            ip = "ip6" if ":" in match.group(1) else "ip4"
            hint = f" (did you mean /{ip}/{match.group(1)}/tcp/{match.group(2)}?)"
        raise AddressError(f"{what} {text!r} is not a multiaddr{hint}") from None


def check_listen(addrs: list[str]) -> list[str]:
    """The listen multiaddrs, each TCP on an IP with a free port; AddressError otherwise."""
    for text in addrs:
        addr = _parse(text, "--listen")
        names = [p.name for p in addr.protocols()]
        if names[:1] not in (["ip4"], ["ip6"]) or names[1:2] != ["tcp"] or len(names) != 2:
            raise AddressError(f"--listen {text!r} must be /ip4/ADDRESS/tcp/PORT or "
                               f"/ip6/ADDRESS/tcp/PORT")
        _port_free(addr.value_for_protocol(names[0]), int(addr.value_for_protocol("tcp")),
                   names[0], text)
    return addrs


def _port_free(ip: str, port: int, family: str, text: str) -> None:
    """The bind the node will make, made and undone: a taken port, or an address that is not this
    machine's. Port 0 too: a node on `/ip4/192.0.2.1/tcp/0` started, listened nowhere, and said
    nothing (py-libp2p logs the failed bind and goes on)."""
    sock = socket.socket(socket.AF_INET6 if family == "ip6" else socket.AF_INET)
    try:
        # SO_REUSEADDR so that a port left in TIME_WAIT by a stopped node is not taken for busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressError(f"--listen {text}: port {port} is already in use (another node?); "
                               f"pick another port or .../tcp/0") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise AddressError(f"--listen {text}: {ip} is not an address of this machine "
                               f"(0.0.0.0 listens on every interface)") from None
        raise AddressError(f"--listen {text}: {exc.strerror}") from None
    finally:
        sock.close()


def check_bootstrap(addr: str, where: str) -> str:
    """A bootstrap multiaddr, which must name its peer (`.../p2p/ID`); AddressError otherwise."""
    parsed = _parse(addr, where)
    if "p2p" not in [p.name for p in parsed.protocols()]:
        raise AddressError(f"{where} {addr!r} does not end in /p2p/PEER_ID (copy the line a "
                           f"node prints at start)")
    return addr


def bootstrap_addrs(cli: list[str], home: Path) -> list[str]:
    """Bootstrap peers from `--bootstrap`, `$SWARM_BOOTSTRAP` and HOME/bootstrap.txt, checked,
    in that order, without duplicates."""
    found = [check_bootstrap(a, "--bootstrap") for a in cli]
    env = os.environ.get("SWARM_BOOTSTRAP", "")
    found += [check_bootstrap(a, "SWARM_BOOTSTRAP") for a in re.split(r"[,\s]+", env) if a]
    path = home / BOOTSTRAP_FILE
    if path.exists() and not path.is_file():
        raise AddressError(f"{path} is not a file (one bootstrap multiaddr per line)")
    if path.is_file():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(check_bootstrap(line, f"{path}:{number}:"))
    return list(dict.fromkeys(found))
