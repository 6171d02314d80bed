"""What this machine is, for the node's `node` record (no torch import: that is the harness's job)."""
from __future__ import annotations

import os
import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from memory.canonical import digest_hex, pack
from memory.records import Hardware, NodeBody
from node.harness.hardware import cpu_name, memory_total

NODE_RECORD_FILE = "node_record.hash"


def name() -> str:
    """A human name for the node: the host name, shortened."""
    return (socket.gethostname() or "node")[:80]


def _cpu_model() -> str:
    return cpu_name()[:400] or "unknown cpu"


def _memory_gb() -> float:
    """Total RAM through psutil, as the harness reads it (os.sysconf has no page counts on
    Windows: the node record said 0 GB there)."""
    return round(memory_total() / 2**30, 1)


def hardware() -> Hardware:
    """CPU hardware of this machine (the harness reports accelerators in its run records)."""
    return Hardware(accelerator="cpu", device_name=_cpu_model(), cores=os.cpu_count() or 0,
                    memory_gb=_memory_gb(), platform=f"{platform.system()}-{platform.machine()}")


def software() -> dict[str, str]:
    """Versions that matter for reproducing this node's work."""
    versions = {"python": platform.python_version()}
    for package, key in (("swarm-research", "swarm"), ("libp2p", "libp2p"), ("duckdb", "duckdb")):
        try:
            versions[key] = version(package)
        except PackageNotFoundError:
            pass
    versions["implementation"] = sys.implementation.name
    return versions


def _hash(body: NodeBody) -> str:
    return digest_hex(pack(body.model_dump(mode="python")), 16)


def unchanged(home: Path, body: NodeBody) -> bool:
    """Whether `body` equals the node record this home last published."""
    try:
        return (home / NODE_RECORD_FILE).read_text().strip() == _hash(body)
    except OSError:
        return False


def remember(home: Path, body: NodeBody) -> None:
    """Note that `body` has been published."""
    (home / NODE_RECORD_FILE).write_text(_hash(body) + "\n")
