"""Downloads and data checks against a real HTTP server on 127.0.0.1 (never beyond loopback)."""
from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.harness.data import DataError, DataSpec, local_files, prepare_tinystories, resolve_data
from node.harness.download import DownloadError, download


class Files(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` with Range support; `server.cut` closes a response after N bytes."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.server.requests.append(self.headers.get("Range"))
        start, end = 0, len(body) - 1
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            end = min(end, int(match.group(2))) if match.group(2) else end
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:end + 1]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if self.server.cut is not None:
            chunk, self.server.cut = chunk[: self.server.cut], None   # drop the connection once
        self.wfile.write(chunk)


@pytest.fixture()
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    srv.files, srv.cut, srv.requests = {}, None, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


BLOB = bytes(range(256)) * 2000                    # 512 KB


def test_download_checks_sha256_and_reports_progress(server, tmp_path: Path) -> None:
    server.files["/f"] = BLOB
    seen = []
    out = download(url(server, "/f"), tmp_path / "f", sha256=hashlib.sha256(BLOB).hexdigest(),
                   progress=lambda d, t: seen.append((d, t)))
    assert out.read_bytes() == BLOB
    assert seen[-1] == (len(BLOB), len(BLOB))


def test_download_resumes_after_a_dropped_connection(server, tmp_path: Path) -> None:
    server.files["/f"] = BLOB
    server.cut = 100_000
    with pytest.raises(DownloadError, match="closed after"):
        download(url(server, "/f"), tmp_path / "f")
    assert (tmp_path / "f.part").stat().st_size == 100_000
    download(url(server, "/f"), tmp_path / "f", sha256=hashlib.sha256(BLOB).hexdigest())
    assert (tmp_path / "f").read_bytes() == BLOB
    assert server.requests[-1] == "bytes=100000-"            # the second request resumed


def test_download_refuses_a_checksum_mismatch(server, tmp_path: Path) -> None:
    server.files["/f"] = BLOB
    with pytest.raises(DownloadError, match="does not match"):
        download(url(server, "/f"), tmp_path / "f", sha256="0" * 64)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()


def test_download_prefix_and_unreachable_server(server, tmp_path: Path) -> None:
    server.files["/f"] = BLOB
    assert download(url(server, "/f"), tmp_path / "p", max_bytes=1000).read_bytes() == BLOB[:1000]
    with pytest.raises(DownloadError, match="404"):
        download(url(server, "/missing"), tmp_path / "m")
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(DownloadError):
        download(f"http://127.0.0.1:{port}/f", tmp_path / "x", timeout=2)


def _spec(srv, raw: dict[str, bytes], prepared: dict[str, bytes]) -> DataSpec:
    for split, blob in raw.items():
        srv.files[f"/{split}.txt"] = blob
    return DataSpec(name="loopback", train_url=url(srv, "/train.txt"), valid_url=url(srv, "/valid.txt"),
                    **{f"{s}_sha256": hashlib.sha256(b).hexdigest() for s, b in prepared.items()},
                    **{f"{s}_bytes": len(b) for s, b in prepared.items()})


def test_hub_path_prepares_pins_and_caches(server, tmp_path: Path) -> None:
    raw = {s: (f"One {s} story.\nSecond Line.\n<|endoftext|>\nAnother Story.\n" * 300).encode()
           for s in ("train", "valid")}
    prepared = {s: prepare_tinystories(b, 9000) for s, b in raw.items()}
    assert b"<|endoftext|>" not in prepared["train"] and prepared["train"].islower()
    spec = _spec(server, raw, prepared)
    files = resolve_data(spec, tmp_path, progress=lambda d, t: None)
    assert files["train"][0].read_bytes() == prepared["train"]
    n = len(server.requests)
    assert resolve_data(spec, tmp_path)["valid"][1] == spec.valid_sha256
    assert len(server.requests) == n                              # second time: from the cache


def test_hub_path_refuses_bytes_that_do_not_hash_to_the_pin(server, tmp_path: Path) -> None:
    raw = {s: b"some text\n" * 2000 for s in ("train", "valid")}
    prepared = {s: b"other text\n" * 1500 for s in ("train", "valid")}
    with pytest.raises(DataError, match="--data-dir"):
        resolve_data(_spec(server, raw, prepared), tmp_path)


def test_local_files_checksum_refusal(tmp_path: Path, corpus, track, monkeypatch) -> None:
    folder, data = corpus
    assert local_files(track.data, folder)["train"][1] == track.data.train_sha256
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_bytes(data["train"][:-1] + b"X")
    (bad / "valid.txt").write_bytes(data["valid"])
    with pytest.raises(DataError, match="not the test-corpus train split"):
        resolve_data(track.data, tmp_path / "home", bad)
    monkeypatch.setenv("SWARM_DATA_DIR", str(bad))
    with pytest.raises(DataError, match="not the test-corpus train split"):
        resolve_data(track.data, tmp_path / "home")
