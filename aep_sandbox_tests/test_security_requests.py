"""Hostile HTTP requests: no work before authentication, every body bounded, expensive filters bounded.

Each test writes the attack out over a raw socket or HTTP, against a sandbox process of its own where it needs
one, and fails on a sandbox that reads a body before checking the token, or reads one past its bound.
"""

import signal
import socket
import time
from urllib.parse import urlparse

import pytest
import requests

from .conftest import client_for
from .contract import headers

HUGE = 400 * 1024 * 1024  # what the body claims to be; the test sends only its first 64 KiB


def _raw(url: str, method: str, path: str, extra: dict[str, str], declared: int | None, sent: bytes,
         chunked: bool = False) -> tuple[int, float]:
    """Send a request's headers and ``sent`` bytes of its body, then wait for the status line: (status, seconds)."""
    host = urlparse(url)
    with socket.create_connection((host.hostname, host.port), timeout=10) as s:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host.hostname}", "Content-Type: application/json",
                 *(f"{k}: {v}" for k, v in extra.items())]
        lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}")
        started = time.monotonic()
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            if chunked:
                block = b"x" * 1024 * 1024
                for _ in range(11):  # 11 MiB in 1 MiB chunks, past the JSON APIs' 10 MiB
                    s.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            else:
                s.sendall(sent)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: what the test wants
        status = s.recv(64).split(b" ")[1]
        return int(status), time.monotonic() - started


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(sandbox):
    status, seconds = _raw(sandbox.url, "POST", "/data/foundation/catalog/dataSets", {}, HUGE, b"{" * 65536)
    assert status == 401 and seconds < 5


def test_a_huge_body_with_a_wrong_token_is_refused_before_it_is_read(sandbox, client):
    h = {k: v for k, v in headers(client, Authorization="Bearer nope").items() if k.lower() != "content-type"}
    status, _ = _raw(sandbox.url, "POST", "/data/foundation/query/queries", h, HUGE, b"{" * 65536)
    assert status == 401


def test_an_authenticated_json_body_past_its_bound_is_a_413_before_it_is_read(sandbox, client):
    h = {k: v for k, v in headers(client).items() if k.lower() != "content-type"}
    status, seconds = _raw(sandbox.url, "POST", "/data/foundation/query/queries", h, HUGE, b"{" * 65536)
    assert status == 413 and seconds < 5


def test_a_chunked_body_past_its_bound_is_cut_off(sandbox, client):
    h = {k: v for k, v in headers(client).items() if k.lower() != "content-type"}
    status, _ = _raw(sandbox.url, "POST", "/data/foundation/query/queries", h, None, b"x", chunked=True)
    assert status == 413


def test_the_413_is_in_aeps_error_shape(sandbox, client):
    r = requests.post(f"{sandbox.url}/data/foundation/query/queries", headers=headers(client),
                      data=b" " * (10 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["status"] == 413 and "10485760 bytes" in r.json()["detail"]


def test_a_token_request_takes_only_a_small_form(sandbox):
    r = requests.post(f"{sandbox.url}/ims/token/v3", data=b"a" * (65 * 1024),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


@pytest.mark.parametrize("size", [1024, 1024 * 1024])
def test_ordinary_bodies_still_pass(sandbox, size):
    client = client_for(sandbox)
    sql = "SELECT 1 AS one -- " + "x" * size
    assert client.query.run(sql, name="a long comment")["state"] == "SUCCESS"


def test_a_catastrophic_regex_filter_answers_at_once_and_others_are_served_meanwhile(sandbox, client):
    schema = client.schemas.ensure_schema({"title": "redos schema", "type": "object",
                                           "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]})
    client.catalog.ensure_dataset("a" * 40 + "!", schema[0]["$id"])
    started = time.monotonic()
    for pattern in ("^(a+)+$", "^(a|aa)+$", "^(a*)*b$"):  # anchored: no dataset of the session's matches
        r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                         params={"property": f"name~{pattern}"}, timeout=10)
        assert r.status_code == 200 and r.json() == {}
    wildcard = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                            params={"property": "name==zz" + "*z" * 30 + "!"}, timeout=10)
    assert wildcard.status_code == 200 and wildcard.json() == {}
    assert time.monotonic() - started < 5


def test_a_regex_filter_still_finds_what_it_names_and_a_bad_one_is_a_400(sandbox, client):
    schema = client.schemas.ensure_schema({"title": "regex schema", "type": "object",
                                           "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]})
    ds, _ = client.catalog.ensure_dataset("regex target 42", schema[0]["$id"])
    found = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                         params={"property": r"name~^regex target \d+$"}).json()
    assert ds["id"] in found
    bad = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                       params={"property": r"name~(a)\1"})
    assert bad.status_code == 400 and "not valid" in bad.text


def test_held_reads_do_not_take_the_workers_other_calls_need(make_sandbox):
    import threading

    sb = make_sandbox("held reads", lifecycles="query=delay:60")
    client = client_for(sb)
    query = client.query.submit("SELECT 1 AS one", name="a query that runs for a minute")
    h = {**headers(client), "Prefer": "wait=30"}

    def hold() -> None:
        try:
            requests.get(f"{sb.url}/data/foundation/query/queries/{query['id']}", headers=h, timeout=40)
        except requests.RequestException:
            pass  # the sandbox stops when the test ends

    for _ in range(45):
        threading.Thread(target=hold, daemon=True).start()
    started = time.monotonic()
    for _ in range(5):
        r = requests.get(f"{sb.url}/data/foundation/schemaregistry/stats", headers=headers(client), timeout=20)
        assert r.status_code == 200
    assert time.monotonic() - started < 5
    # SIGTERM answers the held reads, and the server shuts down gracefully (uvicorn then re-raises the signal),
    # rather than being killed ten seconds later
    assert sb.stop() == -signal.SIGTERM


def test_a_stopping_sandbox_answers_the_reads_it_holds_and_holds_no_more():
    import threading

    from aep_sandbox.lifecycle import Lifecycles

    release = threading.Event()
    lifecycles = Lifecycles({}, lambda work, lane: threading.Thread(target=work, daemon=True).start())
    lifecycles.begin("query", "q1", lambda: release.wait(60))
    reader = threading.Thread(target=lifecycles.settle, args=("query", "q1", 60))
    reader.start()
    lifecycles.stop_holding()
    reader.join(10)
    assert not reader.is_alive()
    assert lifecycles.settle("query", "q1", 60) is False  # answered at once: nothing is held any more
    release.set()


def test_a_deeply_nested_body_or_expression_is_a_400_not_a_500(sandbox, client):
    deep = b"[" * 200_000 + b"]" * 200_000
    r = requests.post(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client), data=deep)
    assert r.status_code == 400 and r.json()["status"] == 400
    pql = "(" * 3000 + "person.name.firstName = \"x\"" + ")" * 3000
    r = requests.post(f"{sandbox.url}/data/core/ups/segment/definitions", headers=headers(client), json={
        "name": "deep", "expression": {"type": "PQL", "format": "pql/text", "value": pql},
        "schema": {"name": "_xdm.context.profile"}})
    assert r.status_code == 400, r.text


def test_what_the_sandbox_writes_is_its_owners_alone(sandbox, client):
    client.query.run("CREATE TABLE mode_check AS SELECT 1 AS x", name="a dataset on disk")
    files = [p for p in sandbox.data_dir.rglob("*.parquet")]
    assert files
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, path
        assert path.parent.stat().st_mode & 0o077 == 0, path.parent
