"""Check the system packages libp2p's fastecdsa build needs, and install them where we can.

fastecdsa (pinned by libp2p 0.8.1) compiles from source: it needs a C compiler, the Python headers
and GMP's headers. On Debian/Ubuntu as root we install libgmp-dev ourselves; elsewhere we say what
is missing in one line instead of letting pip fail deep inside a compiler log.

`--browser`: the dashboard's page tests drive a headless Chromium; install Debian's `chromium`
package the same way (root + apt-get), else say how. Never fatal: those tests skip without it.
It also installs Debian's `nftables` (the `nft` tool) the same way: tests/network/test_nat.py builds
NATs in network namespaces with it (as root; skipped without it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def _gmp_header_present() -> bool:
    candidates = [Path("/usr/include/gmp.h"), Path("/usr/local/include/gmp.h")]
    candidates += list(Path("/usr/include").glob("*-linux-gnu/gmp.h"))
    return any(p.exists() for p in candidates)


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> int:
    """Make sure a Chromium is on PATH for the page tests, installing Debian's where we can."""
    if any(shutil.which(name) for name in BROWSERS):
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing chromium (the dashboard's page tests run in it)...", flush=True)
        if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False).returncode:
            subprocess.run(["apt-get", "update", "-q"], check=False)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False)
    if not any(shutil.which(name) for name in BROWSERS):
        print("no chromium: the dashboard's page tests will be skipped (Debian/Ubuntu: "
              "apt-get install chromium)", file=sys.stderr)
    return 0


def nat_tools() -> int:
    """Make sure `nft` is there for the NAT test in namespaces (it needs root anyway)."""
    if shutil.which("nft") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return 0
    print("installing nftables (the NAT test builds home routers with nft)...", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "-q", "nftables"], check=False).returncode:
        subprocess.run(["apt-get", "update", "-q"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "nftables"], check=False)
    if not shutil.which("nft"):
        print("no nft: the NAT test will be skipped (apt-get install nftables)", file=sys.stderr)
    return 0


def main() -> int:
    missing = []
    if not (shutil.which("gcc") or shutil.which("cc")):
        missing.append("a C compiler (gcc)")
    include = sysconfig.get_paths().get("include", "")
    if not Path(include, "Python.h").exists():
        missing.append("the Python headers (python3-dev)")
    if not _gmp_header_present():
        if os.geteuid() == 0 and shutil.which("apt-get"):
            print("installing libgmp-dev (needed to build fastecdsa for libp2p)...", flush=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "libgmp-dev"], check=False)
        if not _gmp_header_present():
            missing.append("GMP headers (libgmp-dev on Debian/Ubuntu, gmp on Homebrew)")
    if missing:
        print("libp2p builds fastecdsa from source and needs: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(browser() | nat_tools() if "--browser" in sys.argv[1:] else main())
