"""Check the system packages libp2p's fastecdsa build needs, and install them where we can.

fastecdsa (pinned by libp2p 0.8.1) compiles from source: it needs a C compiler, the Python headers
and GMP's headers. On Debian/Ubuntu as root we install libgmp-dev ourselves; elsewhere we say what
is missing in one line instead of letting pip fail deep inside a compiler log.
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
    sys.exit(main())
