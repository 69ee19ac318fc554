"""The PostgreSQL endpoint reads only what the protocol allows before authentication, refuses malformed
lengths in one log line, and limits connections."""

import socket
import struct
import time

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
    # A closed session frees its place (and a refused one its login's) once the server has read the close, as
    # PostgreSQL's backend exits after it: a client that reconnects at once may still be turned away that moment.
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(**args) as conn:
                assert conn.execute("SELECT 1").fetchall() == [(1,)]
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


STARTUP = struct.pack("!i", 196608) + b"user\0x\0database\0prod:all\0\0"


def _logins(sb, n: int) -> list[socket.socket]:
    """``n`` clients that send their startup packet and then never their password."""
    socks = []
    for _ in range(n):
        s = _raw(sb)
        s.sendall(struct.pack("!i", len(STARTUP) + 4) + STARTUP)
        assert s.recv(9)[:1] == b"R"
        socks.append(s)
    return socks


def test_unfinished_logins_take_no_session_from_clients_that_log_in(make_sandbox):
    from .conftest import client_for

    sb = make_sandbox("pg logins", env={"AEP_SANDBOX_PG_MAX_CONNECTIONS": "3"})
    p = client_for(sb).query.connection_parameters()
    args = {"host": p["host"], "port": p["port"], "dbname": p["dbName"], "user": p["username"], "password": p["token"]}
    stalled = _logins(sb, 2)
    try:
        with psycopg.connect(**args) as a, psycopg.connect(**args) as b:
            assert a.execute("SELECT 1").fetchall() == b.execute("SELECT 1").fetchall() == [(1,)]
        extra = _raw(sb)  # a fourth login while three are under way is turned away at once, not queued
        stalled.append(extra)
        extra.sendall(struct.pack("!i", len(STARTUP) + 4) + STARTUP)
    finally:
        for s in stalled:
            s.close()


def test_a_login_that_never_finishes_is_cut_off_after_authentication_timeout(make_sandbox):
    sb = make_sandbox("pg timeout", env={"AEP_SANDBOX_PG_AUTH_TIMEOUT_S": "0.5"})
    [sock] = _logins(sb, 1)
    with sock:
        sock.settimeout(10)
        assert _closed_by_server(sock)  # within the timeout's half second, long before the test's ten
    log = next(sb.data_dir.glob(f"sandbox-{sb.port}.log")).read_text()
    assert "no login within 0.5s (authentication_timeout)" in log


def test_idle_logins_do_not_hold_a_thread_each(make_sandbox):
    sb = make_sandbox("pg threads", env={"AEP_SANDBOX_PG_MAX_CONNECTIONS": "8"})
    socks = []
    try:
        for _ in range(40):  # 40 sockets that never send a byte: at most 8 are being served
            socks.append(_raw(sb))
        threads = int(next(line for line in open(f"/proc/{sb._proc.pid}/status")
                           if line.startswith("Threads:")).split()[1])
        assert threads < 40
    finally:
        for s in socks:
            s.close()


def test_a_failed_login_does_not_name_the_org_that_would_work(sandbox, client):
    p = client.query.connection_parameters()
    with pytest.raises(psycopg.OperationalError) as failed:
        psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user="guess@AdobeOrg", password="x")
    assert "password authentication failed" in str(failed.value)
    assert sandbox.credentials.org_id not in str(failed.value)


def test_backend_key_data_carries_no_thread_id(sandbox, client):
    # One session after another is served by a recycled thread: a thread id would repeat, a random key does not.
    p = client.query.connection_parameters()
    args = {"host": p["host"], "port": p["port"], "dbname": p["dbName"], "user": p["username"], "password": p["token"]}
    pids = []
    for _ in range(4):
        with psycopg.connect(**args) as conn:
            pids.append(conn.info.backend_pid)
    assert len(set(pids)) == 4 and all(pid > 0 for pid in pids)


def _peak_mb(pid: int) -> int:
    return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM")).split()[1]) // 1024


def test_a_huge_result_is_counted_and_capped_without_holding_its_rows(make_sandbox):
    from .conftest import client_for

    sb = make_sandbox("pg big result")
    client = client_for(sb)
    client.query.select("SELECT 1 AS warm")
    before = _peak_mb(sb._proc.pid)
    done = client.query.run("SELECT * FROM range(10000000)", name="ten million rows over REST")
    assert done["state"] == "SUCCESS" and int(done["rowCount"]) == 10_000_000
    assert len(client.query.select("SELECT * FROM range(10000000)")) == 50_000  # Query Service's interactive cap
    assert _peak_mb(sb._proc.pid) - before < 150  # holding ten million rows in Python took 840 MB


def test_pg_settings_show_postgresql_settings_not_the_data_folder(sandbox, client):
    p = client.query.connection_parameters()
    with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                         password=p["token"], autocommit=True) as conn:
        rows = dict(conn.execute("SELECT name, setting FROM pg_settings").fetchall())
        assert rows["standard_conforming_strings"] == "on" and "allowed_directories" not in rows
        assert str(sandbox.data_dir) not in str(conn.execute("SELECT * FROM pg_catalog.pg_settings").fetchall())
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT current_setting('allowed_directories')")


@pytest.mark.parametrize("message", [b"B\0\0\0\x08\0\xff\xff\xff", b"P\0\0\0\x05\xff",
                                     b"B\0\0\0\x0cp\0s\0\0\x01\0\x05"])
def test_a_malformed_bind_or_parse_closes_the_session_in_one_log_line(sandbox, client, message):
    import ssl  # noqa: F401 (plain text here: the test writes raw protocol messages)

    p = client.query.connection_parameters()
    startup = (struct.pack("!i", 196608) + b"user\0" + p["username"].encode() + b"\0database\0prod:all\0\0")
    with _raw(sandbox) as sock:
        sock.sendall(struct.pack("!i", len(startup) + 4) + startup)
        assert sock.recv(9)[:1] == b"R"
        token = p["token"].encode() + b"\0"
        sock.sendall(b"p" + struct.pack("!i", len(token) + 4) + token)
        got = b""
        while not got.endswith(b"Z\0\0\0\x05I"):
            got += sock.recv(4096)
        sock.sendall(message)
        assert _closed_by_server(sock)
    log = next(sandbox.data_dir.glob(f"sandbox-{sandbox.port}.log")).read_text()
    assert "pgwire.py" not in log and "Traceback" not in log


def test_a_parameter_inside_a_string_is_not_a_parameter(sandbox, client):
    p = client.query.connection_parameters()
    with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                         password=p["token"], autocommit=True) as conn:
        row = conn.execute("SELECT '$1' AS literal, %s AS bound", ["x' OR 1=1 --"]).fetchone()
    assert row == ("$1", "x' OR 1=1 --")
