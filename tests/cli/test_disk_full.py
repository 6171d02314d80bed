"""`swarm join` on a disk that fills up: one line and a clean stop, never a traceback at every write
or a node that goes on training runs it cannot store; started again on the full disk, one line."""
from __future__ import annotations

import json

from memory import stream, synthetic
from tests.smalldisk import on_small_disk, python

DRIVER = """
import json, subprocess, sys, time
from pathlib import Path
home, records = Path(sys.argv[1]) / "home", sys.argv[2]
CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]
JOIN = [*CLI, "join", "--home", str(home), "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
        "--no-dht", "--network", "disk-full", "--no-work"]
node = subprocess.Popen(JOIN, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
deadline = time.monotonic() + 120
while not (home / "api.json").exists() and node.poll() is None and time.monotonic() < deadline:
    time.sleep(0.1)
try:
    imported = subprocess.run([*CLI, "memory", "import", records, "--home", str(home)],
                              capture_output=True, text=True, timeout=300)
    out, _ = node.communicate(timeout=120)
finally:
    node.kill()                                 # a node that did not stop by itself
try:                                            # whatever room is left: none
    with open(Path(sys.argv[1]) / "filler", "wb") as f:
        while True:
            f.write(bytes(4096))
            f.flush()
except OSError:
    pass
again = subprocess.run([*JOIN, "--duration", "60"], capture_output=True, text=True, timeout=180)
print(json.dumps({"import": [imported.returncode, imported.stdout + imported.stderr],
                  "node": [node.returncode, out],
                  "again": [again.returncode, again.stdout + again.stderr]}))
"""


def test_a_node_whose_disk_fills_stops_with_one_line(tmp_path) -> None:
    records = tmp_path / "records.bin"
    with records.open("wb") as out:              # ~2 MB of records, for a 1 MB disk
        stream.write(out, (r.raw for r in synthetic.runs(synthetic.keypairs(3), 3000)))
    disk = tmp_path / "disk"
    proc = on_small_disk(disk, "1m", python(DRIVER, str(disk), str(records)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    full = f"the disk holding {disk / 'home'} is full (No space left on device)"
    code, text = seen["import"]
    lines = text.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {full}"), text
    code, text = seen["node"]                    # the node stopped by itself, and said why
    assert code == 1 and "Traceback" not in text, text
    assert text.strip().splitlines()[-1].startswith(f"error: node stopped: {full}"), text
    code, text = seen["again"]
    assert code == 1 and text.strip() == text.strip().splitlines()[0], text
    assert text.startswith(f"error: {full}"), text
