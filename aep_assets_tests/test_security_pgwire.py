"""The PostgreSQL endpoint reads only what the protocol allows before authentication, refuses malformed
lengths in one log line, and limits connections."""

import socket
import struct

import psycopg
import pytest


def _raw(sandbox) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sandbox.pg_port), timeout=10)


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, TimeoutError):
        return True
    return data == b"" or data.startswith(b"E")  # nothing, or a FATAL error before the close


@pytest.mark.parametrize("length", [300 * 1024 * 1024, -5, 0, 3, 7, 10_001])
def test_a_startup_packet_with_a_bogus_length_is_refused_before_it_is_read(sandbox, length):
    with _raw(sandbox) as sock:
        sock.sendall(struct.pack("!i", length) + b"\0" * 64)
        assert _closed_by_server(sock)


def test_a_huge_password_message_before_authentication_is_refused(sandbox):
    startup = struct.pack("!i", 196608) + b"user\0x\0database\0prod:all\0\0"
    with _raw(sandbox) as sock:
        sock.sendall(struct.pack("!i", len(startup) + 4) + startup)
        assert sock.recv(9)[:1] == b"R"  # the server asks for the password
        sock.sendall(b"p" + struct.pack("!i", 300 * 1024 * 1024) + b"x" * 1024)
        assert _closed_by_server(sock)


def test_malformed_packets_are_logged_in_one_line_without_a_traceback(sandbox):
    with _raw(sandbox) as sock:
        sock.sendall(struct.pack("!i", -1))
        _closed_by_server(sock)
    log = next(sandbox.data_dir.glob(f"sandbox-{sandbox.port}.log")).read_text()
    assert "closing the connection from 127.0.0.1: invalid message length -1" in log
    assert "pgwire.py" not in log  # no traceback of the endpoint's own code


def test_the_endpoint_still_serves_after_the_attacks(sandbox, client):
    p = client.query.connection_parameters()
    with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                         password=p["token"]) as conn:
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


def test_connections_beyond_the_limit_are_refused_with_53300(make_sandbox):
    sb = make_sandbox("pg limit", env={"AEP_SANDBOX_PG_MAX_CONNECTIONS": "2"})
    from .conftest import client_for

    p = client_for(sb).query.connection_parameters()
    args = {"host": p["host"], "port": p["port"], "dbname": p["dbName"], "user": p["username"], "password": p["token"]}
    with psycopg.connect(**args), psycopg.connect(**args):
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            psycopg.connect(**args)
    with psycopg.connect(**args) as conn:  # a closed session frees its place
        assert conn.execute("SELECT 1").fetchall() == [(1,)]
