"""A small internet in Linux network namespaces: one public segment and private homes behind NAT.

Used by tests/network/test_nat.py and `swarm bench nat`. Needs root, `ip` (iproute2) and `nft`
(Debian's `nftables`; scripts/check_build_deps.py installs it when run as root).

    [ wan: bridge br0, 203.0.113.1 (the public node) ]
        |-- 203.0.113.2  [ pub2 ]   (with publics=2: a second public machine)
        |-- 203.0.113.11 [ nat1: MASQUERADE, forward drops unsolicited inbound ] 10.1.0.1 -- 10.1.0.2 [ h1 ]
        |                                            (with hosts=2, the same LAN) 10.1.0.1 -- 10.1.0.3 [ h1-2 ]
        |-- 203.0.113.12 [ nat2: the same ]                                      10.2.0.1 -- 10.2.0.2 [ h2 ]

Each NAT box is a home router: outbound connections are masqueraded to its WAN address, and only
replies (conntrack `established,related`) come back in, so a node in h1 can dial out but cannot be
dialed. Unsolicited connections to the router itself are dropped silently, as most home routers do
(answering them with a reset would leave a conntrack entry that makes the NAT pick another port for
the node's own hole-punching SYN, and no hole punch could succeed). Every name carries a per-run prefix; `destroy()` kills the processes inside and deletes the
namespaces (their veths and nftables tables go with them), and is safe to call twice.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from swarm.bench.nodes import Node

T = TypeVar("T")
WAN = "203.0.113"              # TEST-NET-3: never routed on the real internet
PUBLIC_IP = f"{WAN}.1"
CLONE_NEWNET = 0x40000000

NAT_RULES = """table ip swarm_nat {
    chain post {
        type nat hook postrouting priority 100; policy accept;
        oifname "wan0" masquerade
    }
    chain filter_in {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan0" accept
    }
    chain router_in {
        type filter hook input priority 0; policy accept;
        iifname "wan0" ct state new drop
    }
}
"""


def unavailable() -> str | None:
    """Why namespaces cannot be built here (one line), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install {'iproute2' if tool == 'ip' else 'nftables'})"
    probe = f"swprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()[:120]}"
    try:
        nft = subprocess.run(["ip", "netns", "exec", probe, "nft", "list", "tables"],
                             capture_output=True, text=True)
        if nft.returncode:
            return f"nft does not run in a namespace: {nft.stderr.strip()[:120]}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class NatLab:
    """The namespaces of one run: `wan` (public) and `pub2`... (more public machines), and per
    home i its router `nat{i}` and the machines behind it, `h{i}` and `h{i}-2`... (one LAN)."""

    def __init__(self, homes: int = 2, publics: int = 1, hosts: int = 1) -> None:
        self.prefix = f"sw{uuid.uuid4().hex[:6]}"
        self.homes, self.publics, self.hosts = homes, publics, hosts
        self.made: list[str] = []

    def ns(self, name: str) -> str:
        """The real namespace name of `wan`, `nat1`, `h1`, ..."""
        return f"{self.prefix}-{name}"

    @staticmethod
    def host(i: int, j: int = 1) -> str:
        """The name of machine j behind home i's router (`h1`, `h1-2`, ...)."""
        return f"h{i}" if j == 1 else f"h{i}-{j}"

    @staticmethod
    def private_ip(i: int, j: int = 1) -> str:
        """The address of machine j behind home i's router."""
        return f"10.{i}.0.{1 + j}"

    @staticmethod
    def public_ip(k: int = 1) -> str:
        """The address of public machine k (1: `wan` itself, 2: `pub2`, ...)."""
        return f"{WAN}.{k}"

    @staticmethod
    def nat_ip(i: int) -> str:
        """Home i's public (WAN) address, as the internet sees it."""
        return f"{WAN}.{10 + i}"

    def build(self) -> NatLab:
        """Create the namespaces, links, addresses, routes and NAT rules."""
        names = ["wan"] + [f"pub{k}" for k in range(2, self.publics + 1)]
        for i in range(1, self.homes + 1):
            names += [f"nat{i}"] + [self.host(i, j) for j in range(1, self.hosts + 1)]
        for name in names:
            _run("ip", "netns", "add", self.ns(name))
            self.made.append(self.ns(name))
            self._ip(name, "link", "set", "lo", "up")
        self._bridge("wan", "br0", f"{PUBLIC_IP}/24")
        for k in range(2, self.publics + 1):
            self._plug("wan", "br0", f"q{k}", f"pub{k}", f"{self.public_ip(k)}/24")
        for i in range(1, self.homes + 1):
            self._home(i)
        return self

    def _home(self, i: int) -> None:
        nat = f"nat{i}"
        self._ip("wan", "link", "add", f"p{i}", "type", "veth", "peer", "name", "wan0",
                 "netns", self.ns(nat))
        self._ip("wan", "link", "set", f"p{i}", "master", "br0", "up")
        self._ip(nat, "addr", "add", f"{self.nat_ip(i)}/24", "dev", "wan0")
        self._ip(nat, "link", "set", "wan0", "up")
        # the home LAN is a bridge named lan0, so the NAT rules' `iifname "lan0"` covers every host
        self._bridge(nat, "lan0", f"10.{i}.0.1/24")
        for j in range(1, self.hosts + 1):
            host = self.host(i, j)
            self._plug(nat, "lan0", f"l{j}", host, f"{self.private_ip(i, j)}/24")
            self._ip(host, "route", "add", "default", "via", f"10.{i}.0.1")
        _run("ip", "netns", "exec", self.ns(nat), "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _run("ip", "netns", "exec", self.ns(nat), "nft", "-f", "-", stdin=NAT_RULES)

    def _bridge(self, name: str, bridge: str, cidr: str) -> None:
        """A bridge (a LAN switch) in namespace `name`, with `cidr` on it."""
        self._ip(name, "link", "add", bridge, "type", "bridge")
        self._ip(name, "addr", "add", cidr, "dev", bridge)
        self._ip(name, "link", "set", bridge, "up")

    def _plug(self, name: str, bridge: str, port: str, machine: str, cidr: str) -> None:
        """Cable machine `machine` (its eth0, with `cidr`) into `bridge` of namespace `name`."""
        self._ip(name, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", self.ns(machine))
        self._ip(name, "link", "set", port, "master", bridge, "up")
        self._ip(machine, "addr", "add", cidr, "dev", "eth0")
        self._ip(machine, "link", "set", "eth0", "up")

    def _ip(self, name: str, *args: str) -> None:
        _run("ip", "-n", self.ns(name), *args)

    def popen(self, name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `argv` inside namespace `name`."""
        return subprocess.Popen(["ip", "netns", "exec", self.ns(name), *argv], **kwargs)

    def destroy(self) -> None:
        """Kill what runs in our namespaces, then delete them (links and NAT tables go too)."""
        for ns in reversed(self.made):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


class NsNode(Node):
    """A node running inside a namespace: its local API is reached from a thread in that
    namespace (the API listens on the namespace's own 127.0.0.1)."""

    ns: str = ""

    def request(self, path: str, body: bytes | None = None, token: str | None = None) -> Any:
        """Call the node's local API from inside its namespace."""
        return in_netns(self.ns, lambda: Node.request(self, path, body, token))


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that has entered network namespace `ns` (setns is per thread,
    so the caller's namespace is untouched); return its result or raise its exception."""
    libc = ctypes.CDLL(None, use_errno=True)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
