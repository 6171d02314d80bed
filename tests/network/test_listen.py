"""`swarm join`'s addresses, through the CLI: a taken port, a listen address that is not a
multiaddr and a bootstrap that names no peer are each refused in one line; bootstrap peers also
come from $SWARM_BOOTSTRAP and HOME/bootstrap.txt; a node on 0.0.0.0 advertises addresses peers can
dial."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.listen import AddressError, bootstrap_addrs, check_listen
from tests.network.launcher import launch, wait_for, wait_until_serving

CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]


def _join(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "join", "--home", str(home), "--no-mdns", "--no-work", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def _one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    text = " ".join(done.stderr.split())            # rich wraps at the terminal's width
    assert done.returncode == 1, done.stderr
    assert message in text and "Traceback" not in text and text.count("error:") == 1, text


def test_a_second_node_on_a_taken_port_is_refused(tmp_path: Path, network: str) -> None:
    first = launch(tmp_path / "a", network)
    port = first.addr.split("/tcp/")[1].split("/")[0]
    done = _join(tmp_path / "b", "--listen", f"/ip4/127.0.0.1/tcp/{port}", "--network", network)
    _one_line_error(done, f"port {port} is already in use")
    assert first.status()["peer_id"]                      # the first one is unaffected


@pytest.mark.parametrize("args, message", [
    (["--listen", "127.0.0.1:7430"],
     "--listen '127.0.0.1:7430' is not a multiaddr (did you mean /ip4/127.0.0.1/tcp/7430?)"),
    (["--bootstrap", "foo"], "--bootstrap 'foo' is not a multiaddr"),
])
def test_bad_addresses_are_refused_in_one_line(tmp_path: Path, args: list[str],
                                               message: str) -> None:
    _one_line_error(_join(tmp_path / "h", "--listen", "/ip4/127.0.0.1/tcp/0", *args), message)


@pytest.mark.parametrize("listen, bootstrap, env, message", [
    ("/ip4/127.0.0.1/udp/7430", [], "", "must be /ip4/ADDRESS/tcp/PORT"),
    ("/ip4/127.0.0.1/tcp/0", ["/ip4/127.0.0.1/tcp/7430"], "", "does not end in /p2p/PEER_ID"),
    ("/ip4/127.0.0.1/tcp/0", [], "/ip4/127.0.0.1/tcp/1/p2p/x, bar",
     "SWARM_BOOTSTRAP '/ip4/127.0.0.1/tcp/1/p2p/x' is not a multiaddr"),
])
def test_address_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listen: str,
                        bootstrap: list[str], env: str, message: str) -> None:
    monkeypatch.setenv("SWARM_BOOTSTRAP", env)
    with pytest.raises(AddressError) as err:
        check_listen([listen])
        bootstrap_addrs(bootstrap, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("port", [0, 7431])
def test_a_listen_address_not_on_this_machine_is_refused(tmp_path: Path, port: int) -> None:
    """192.0.2.1 (TEST-NET-1) is no machine's: with port 0 the node started, listened nowhere
    and said nothing. One line now, and the home is not made."""
    done = _join(tmp_path / "h", "--listen", f"/ip4/192.0.2.1/tcp/{port}", "--duration", "1")
    _one_line_error(done, f"--listen /ip4/192.0.2.1/tcp/{port}: 192.0.2.1 is not an address of "
                          f"this machine")
    assert not (tmp_path / "h").exists()


def test_bootstrap_from_the_environment_and_the_home_file(tmp_path: Path, network: str) -> None:
    first = launch(tmp_path / "a", network)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bootstrap.txt").write_text("# peers\nnot-an-address\n")
    with pytest.raises(AddressError, match=r"bootstrap.txt:2: 'not-an-address' is not a multiaddr"):
        bootstrap_addrs([], bad)
    folder = tmp_path / "folder"
    (folder / "bootstrap.txt").mkdir(parents=True)          # a typo'd setup is said, not ignored
    with pytest.raises(AddressError, match=r"bootstrap.txt is not a file"):
        bootstrap_addrs([], folder)
    by_file = tmp_path / "b"
    by_file.mkdir()
    (by_file / "bootstrap.txt").write_text(f"# a peer\n{first.addr}  # the first node\n")
    second = launch(by_file, network, wait=False)
    third = launch(tmp_path / "c", network, env={"SWARM_BOOTSTRAP": first.addr}, wait=False)
    for node in (second, third):
        wait_until_serving(node)
        wait_for(lambda node=node: node.status()["connected"] >= 1, 120, "a bootstrap connection")



def test_a_node_on_every_interface_tells_peers_addresses_they_can_dial() -> None:
    """Listening on 0.0.0.0 (the default), a node's identify lists this machine's addresses: a
    peer told the wildcard dialed itself, and py-libp2p dials only the first TCP address it knows
    of a peer, so that peer never reached the node again (found by test_nat_running.py). Real
    py-libp2p hosts on this machine: the node's own, and plain ones it is told of or dialed by."""
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.peer.peerinfo import PeerInfo

    from node.host import NetConfig, NetHost

    async def main() -> list[str]:
        node = NetHost(NetConfig(), None, None, lambda *_: None)._make_host()
        client, old = new_host(), new_host()
        loop = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        async with node.run([multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/0")]), client.run(loop), \
                old.run(loop):
            # an older peer's wildcard address is never dialed (it would reach this machine)
            wildcard = f"/ip4/0.0.0.0/tcp/{old.get_transport_addrs()[0].value_for_protocol('tcp')}"
            with pytest.raises(Exception, match="connection gate"):
                await node.connect(PeerInfo(old.get_id(), [multiaddr.Multiaddr(wildcard)]))
            port = node.get_transport_addrs()[0].value_for_protocol("tcp")
            dial = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
            await client.connect(PeerInfo(node.get_id(), [dial]))
            with trio.fail_after(120):          # identify runs on connect: its addresses
                while not (told := [str(a) for a in client.get_peerstore().addrs(node.get_id())
                                    if "/ip4/127.0.0.1/" not in str(a)]):   # replace the dialed
                    await trio.sleep(0.05)
            return told

    told = trio.run(main)
    assert not [a for a in told if "/ip4/0.0.0.0/" in a], told
