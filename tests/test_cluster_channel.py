"""The writer channel over TCP between cluster nodes (ADR 0014): a follower forwards its
writes to the sequencer's ``--advertise`` address after proving it holds the peer secret.

Real sockets on 127.0.0.1, a real store's writer behind the server.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from test_service_support import store_config

from depository.store import RemoteWriter, Store, StoreError, WriterServer, _remote

SECRET = b"s" * 32


def _server(store: Store, secret: bytes | None = SECRET) -> WriterServer:
    assert store.local_writer is not None
    return WriterServer(store.local_writer, store.product, store.path,
                        listen=("127.0.0.1", 0), secret=secret)


def test_a_follower_writes_through_the_sequencer_over_tcp(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.init(path, config=store_config()) as seq:
        server = _server(seq)
        assert isinstance(server.address, tuple)
        try:
            lost: list[bool] = []
            node = Store.attach(path, lambda reads: RemoteWriter(
                server.address, reads, lambda: lost.append(True), secret=SECRET))
            try:
                r = node.put("gurukul", "a", b"one", metadata={"k": "v"}, actor="w")
                assert seq.get("gurukul", "a").log_index == r.log_index
                assert node.put("gurukul", "a", b"one").duplicate
                note = node.checkpoint()
                assert int(note.split(b"\n")[1]) == seq.size()
            finally:
                node.close()
            assert not lost
        finally:
            server.close()


def test_a_wrong_secret_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.init(path, config=store_config()) as seq:
        server = _server(seq)
        size = seq.size()
        try:
            with pytest.raises(_remote.PeerAuthError, match="peer secret"):
                RemoteWriter(server.address, seq.reads, lambda: None, secret=b"x" * 32)
            # A client that skips the handshake and sends a put frame straight away: the
            # server reads its bytes as the handshake answer, refuses and closes.
            assert isinstance(server.address, tuple)
            with socket.create_connection(server.address, timeout=5) as raw:
                pp = seq.prepare_put("gurukul", "sneaky", b"bytes", actor="w")
                payload = pp.encode()
                raw.sendall(struct.pack("!IBI", len(payload) + 5, 1, 1) + payload)
                raw.settimeout(5)
                data = b""
                try:
                    while chunk := raw.recv(4096):
                        data += chunk
                except ConnectionResetError:  # closed with our unread frame in its buffer
                    pass
                assert data.startswith(_remote._HELLO)  # only the hello, then closed
            assert seq.size() == size
            with pytest.raises(StoreError):
                seq.get("gurukul", "sneaky")
        finally:
            server.close()


def test_tcp_needs_a_secret(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s", config=store_config()) as seq:
        with pytest.raises(StoreError, match="peer secret"):
            _server(seq, secret=None)
        with pytest.raises(StoreError, match="peer secret"):
            RemoteWriter(("127.0.0.1", 9), seq.reads, lambda: None)


def test_serve_node_options_are_checked(tmp_path: Path) -> None:
    """`serve --node-id` needs its peer options, one process, and a PostgreSQL store."""
    from click.testing import CliRunner

    from depository.cli import main

    Store.init(tmp_path / "s", config=store_config()).close()
    secret = tmp_path / "peer.secret"
    secret.write_bytes(SECRET)
    run = CliRunner().invoke
    base = ["serve", "--store", str(tmp_path / "s"), "--node-id", "a"]
    r = run(main, base)
    assert r.exit_code == 2 and "--advertise" in r.output, r.output
    r = run(main, [*base, "--advertise", "127.0.0.1:7401", "--peer-secret", str(secret),
                   "--workers", "2"])
    assert r.exit_code == 2 and "one process per node" in r.output, r.output
    r = run(main, [*base, "--advertise", "127.0.0.1:7401", "--peer-secret",
                   str(tmp_path / "missing")])
    assert r.exit_code == 2 and "missing" in r.output, r.output
    r = run(main, [*base, "--advertise", "127.0.0.1:7401", "--peer-secret", str(secret)])
    assert r.exit_code == 1 and "need the PostgreSQL engine" in r.output, r.output
