"""The AEP client against the real sandbox over HTTP, with injected 429/503/401 responses, dropped connections,
slow responses and failed batches."""

import time
from functools import partial

import polars as pl
import pyarrow as pa
import pytest

from aep_assets.aep import auth, errors
from aep_assets.aep.polling import poll
from aep_assets.pipeline import ingest
from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for, replace_rows

PROFILE = "https://ns.adobe.com/xdm/context/profile"


def _fieldgroup(tenant: str, title: str) -> dict:
    return {"title": title, "type": "object", "meta:intendedToExtend": [PROFILE],
            "definitions": {"f": {"properties": {f"_{tenant}": {"type": "object", "properties": {
                "userid": {"type": "string"}}}}}},
            "allOf": [{"$ref": "#/definitions/f"}]}


def test_token_is_cached_across_calls(client):
    client.schemas.tenant_id()
    first = client.session.tokens.token()
    client.catalog.find_dataset("nothing")
    assert client.session.tokens.token() == first


def test_secrets_never_appear_in_repr(client):
    text = repr(client) + repr(client.session) + repr(client.session.tokens) + repr(client.config)
    assert client.config.client_secret not in text
    assert client.session.tokens.token() not in text


def test_429_is_retried_after_retry_after(make_sandbox):
    sb = make_sandbox(faults=[{"status": 429, "path": "/catalog/dataSets", "times": 2, "retry_after": 0.3}])
    client = client_for(sb)
    start = time.monotonic()
    assert client.catalog.find_dataset("absent") is None
    assert time.monotonic() - start >= 0.6  # two waits of Retry-After 0.3 s
    assert client.session.retries_made == 2


def test_503_is_retried_with_backoff(make_sandbox):
    sb = make_sandbox(faults=[{"status": 503, "path": "/schemaregistry/stats", "times": 3}])
    client = client_for(sb)
    assert client.schemas.tenant_id() == "aepsandbox"
    assert client.session.retries_made == 3


def test_503_beyond_the_retry_budget_raises_server_error_with_context(make_sandbox):
    sb = make_sandbox(faults=[{"status": 503, "path": "/schemaregistry/stats"}])
    client = client_for(sb, max_retries=2)
    client.session.tokens.token()
    with pytest.raises(errors.ServerError) as info:
        client.schemas.tenant_id()
    err = info.value
    assert err.status == 503 and err.code == "GW-5030-503" and err.request_id
    assert "GET" in str(err) and "/schemaregistry/stats" in str(err) and "try again later" in str(err)


def test_401_refreshes_the_token_once(make_sandbox):
    sb = make_sandbox(faults=[{"status": 401, "path": "/schemaregistry/stats", "times": 1}])
    client = client_for(sb)
    old = client.session.tokens.token()
    assert client.schemas.tenant_id() == "aepsandbox"
    assert client.session.tokens.token() != old
    assert client.session.unauthorized_refreshes == 1


def test_persistent_401_raises_unauthorized_with_the_gateway_code(make_sandbox):
    sb = make_sandbox(faults=[{"status": 401, "path": "/schemaregistry/stats"}])
    with pytest.raises(errors.Unauthorized) as info:
        client_for(sb).schemas.tenant_id()
    assert info.value.code == "401013"
    assert "AEP_CLIENT_SECRET" in str(info.value)


def test_wrong_secret_is_refused_by_ims(sandbox):
    with pytest.raises(errors.Unauthorized) as info:
        client_for(sandbox, client_secret="wrong").schemas.tenant_id()
    assert info.value.code == "invalid_client"


def test_token_is_refreshed_before_it_expires(sandbox, monkeypatch):
    client = client_for(sandbox)
    client.schemas.tenant_id()
    first = client.session.tokens.token()
    day_later = auth.monotonic() + 86399  # the sandbox's tokens live 86,399 s, as IMS's do
    monkeypatch.setattr(auth, "monotonic", lambda: day_later)  # the token provider's clock only
    assert client.schemas.tenant_id() == "aepsandbox"
    assert client.session.tokens.token() != first
    assert client.session.unauthorized_refreshes == 0  # refreshed ahead of expiry, not after a 401


def test_an_expired_token_is_refused_and_refreshed_once(make_sandbox):
    sb = make_sandbox(token_ttl=0)  # every token has expired by the time it is used
    client = client_for(sb)
    with pytest.raises(errors.Unauthorized) as info:
        client.schemas.tenant_id()
    assert info.value.code == "401013"
    assert client.session.unauthorized_refreshes == 1  # one fresh token was tried before giving up


def test_duplicate_title_is_a_bad_request_with_xdm_code(client):
    tenant = client.schemas.tenant_id()
    body = _fieldgroup(tenant, "duplicate title test")
    client.session.json("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", json=body)
    with pytest.raises(errors.BadRequest) as info:
        client.session.json("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", json=body)
    assert info.value.status == 400 and info.value.code == "XDM-1521-400"
    assert "duplicate title test" in str(info.value)


def test_get_or_create_returns_the_existing_resource(client):
    tenant = client.schemas.tenant_id()
    first, created = client.schemas.ensure_fieldgroup(_fieldgroup(tenant, "ensure fg"))
    again, created_again = client.schemas.ensure_fieldgroup(_fieldgroup(tenant, "ensure fg"))
    assert created and not created_again and first["$id"] == again["$id"]


def test_catalog_pages_through_more_than_one_page(client):
    tenant = client.schemas.tenant_id()
    fg, _ = client.schemas.ensure_fieldgroup(_fieldgroup(tenant, "paging fg"))
    schema, _ = client.schemas.ensure_schema({"title": "paging schema", "type": "object",
                                              "allOf": [{"$ref": PROFILE}, {"$ref": fg["$id"]}]})
    for i in range(105):
        client.catalog.create_dataset(f"paging {i:03d}", schema["$id"])
    names = [d["name"] for d in client.catalog.iter_datasets(property="name~^paging ")]
    assert len(names) == 105 and len(set(names)) == 105
    ds, created = client.catalog.ensure_dataset("paging 104", schema["$id"])
    assert not created and ds["name"] == "paging 104"


def test_failed_batch_raises_with_aep_errors_and_shows_no_rows(client):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    tenant = client.schemas.tenant_id()
    fg, _ = client.schemas.ensure_fieldgroup(_fieldgroup(tenant, "batch fg"))
    schema, _ = client.schemas.ensure_schema({"title": "batch schema", "type": "object",
                                              "allOf": [{"$ref": PROFILE}, {"$ref": fg["$id"]}]})
    ds = client.catalog.create_dataset("batch failure", schema["$id"])
    buf = io.BytesIO()
    pq.write_table(pa.table({"unknownField": [1, 2]}), buf)
    with pytest.raises(errors.BatchFailed) as info:
        client.ingestion.ingest(ds["id"], [("bad.parquet", buf.getvalue())])
    assert "unknownField" in str(info.value)
    assert list(client.catalog.iter_batches(ds["id"], status="success")) == []


def test_poll_raises_at_its_deadline():
    with pytest.raises(errors.AEPTimeout, match="did not finish within"):
        poll(lambda _wait: {"state": "IN_PROGRESS"}, lambda q: False, what="Query x", timeout_s=0.3, interval_s=0.05)


def test_poll_offers_its_pause_to_the_server_and_counts_the_time_it_held(monkeypatch):
    from aep_assets.aep import polling

    clock, slept, offered = [0.0], [], []
    monkeypatch.setattr(polling, "monotonic", lambda: clock[0])  # this module's clock only, not the process's
    monkeypatch.setattr(polling, "sleep", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))

    def fetch(wait_s: float) -> int:  # a server that holds the first two reads for the whole wait
        offered.append(wait_s)
        clock[0] += wait_s if len(offered) <= 2 else 0.001
        return len(offered)

    assert poll(fetch, lambda n: n == 4, what="Query x", timeout_s=60, interval_s=0.1) == 4
    assert offered == pytest.approx([0.1, 0.115, 0.13225, 0.1520875])
    assert slept == pytest.approx([0, 0, 0.13125])  # held reads need no pause; a quick answer waits it out
    assert polling.prefer_wait(0.1) == {"Prefer": "wait=1"} and polling.prefer_wait(4.2) == {"Prefer": "wait=5"}
    assert polling.prefer_wait(0) == {}


def test_failed_query_raises_query_failed_with_sqlstate(client):
    with pytest.raises(errors.QueryFailed) as info:
        client.query.run("SELECT * FROM no_such_table", name="bad")
    assert info.value.errors[0]["code"] == "42P01"


def test_unknown_terminal_state_is_an_error(client, monkeypatch):
    monkeypatch.setattr(client.query, "get", lambda qid, wait_s=0: {"state": "EXPLODED"})
    with pytest.raises(errors.UnexpectedState, match="EXPLODED"):
        client.query.wait("q1", timeout_s=1)


def test_a_dropped_connection_is_retried(make_sandbox):
    sb = make_sandbox(faults=[{"drop": True, "path": "/catalog/dataSets", "times": 1}])
    client = client_for(sb)
    assert client.session.json("GET", "/data/foundation/catalog/dataSets") == {}
    assert client.session.retries_made == 1


def test_a_slow_response_past_the_timeout_is_retried(make_sandbox):
    sb = make_sandbox(faults=[{"delay_s": 2.0, "path": "/schemaregistry/stats", "times": 1}])
    client = client_for(sb, timeout_s=0.5)
    started = time.monotonic()
    assert client.schemas.tenant_id() == "aepsandbox"
    assert client.session.retries_made >= 1 and time.monotonic() - started < 10  # the slow answer was abandoned


def test_a_slow_response_inside_the_timeout_just_arrives_late(make_sandbox):
    sb = make_sandbox(faults=[{"delay_s": 0.4, "path": "/schemaregistry/stats", "times": 1}])
    client = client_for(sb)
    started = time.monotonic()
    client.schemas.tenant_id()
    assert client.session.retries_made == 0 and time.monotonic() - started >= 0.4


def test_ims_throttling_is_retried(make_sandbox):
    sb = make_sandbox(faults=[{"status": 429, "path": "/ims/token", "times": 2, "retry_after": 0.1}])
    assert client_for(sb).schemas.tenant_id() == "aepsandbox"


def test_a_retried_batch_sends_every_file_of_tables_built_while_encoding(make_sandbox, monkeypatch):
    """Tables may come as functions that build them in the encoding threads; a batch the platform fails is sent
    again whole, every table's every file, in the same order."""
    monkeypatch.setattr(ingest, "ROWS_PER_FILE", 3)  # several files per table
    sb = make_sandbox(faults=[{"target": "batch", "times": 1}])
    client = client_for(sb)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    ds = client.catalog.create_dataset("built tables", platform.schema_id("event"))["id"]

    def table(first: int, rows: int) -> pa.Table:
        ids = [f"e{first + i}" for i in range(rows)]
        return pa.table({"_id": ids, "timestamp": pa.array(range(rows), pa.timestamp("us", tz="UTC")),
                         f"_{tenant}": pa.StructArray.from_arrays([pa.array(ids)], names=["userid"])})

    sources = [partial(table, 0, 7), table(7, 2), partial(table, 9, 5)]
    done = replace_rows(client, ds, sources)
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 14
    assert [b["status"] for b in client.catalog.iter_batches(ds, status="failed")] == ["failed"]
    files = client.data_access.batch_contents(done["id"])
    assert len(files) == 3 + 1 + 2
    rows = pl.concat([pl.read_parquet(files[name]) for name in sorted(files)])
    assert rows["_id"].to_list() == [f"e{i}" for i in range(14)]


def test_a_platform_batch_failure_is_ingested_again_and_a_data_failure_is_not(make_sandbox):
    sb = make_sandbox(faults=[{"target": "batch", "times": 1}])
    client = client_for(sb)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    ds = client.catalog.create_dataset("batch faults", platform.schema_id("event"))["id"]
    table = pa.table({"_id": ["b1", "b2"], "timestamp": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
                      f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1", "u2"])], names=["userid"])})
    done = replace_rows(client, ds, [table])
    batches = list(client.catalog.iter_batches(ds))
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 2
    assert sorted(b["status"] for b in batches) == ["failed", "success"]
    failed = next(b for b in batches if b["status"] == "failed")
    assert failed["errors"][0]["code"] == "INTERNAL"
    bad = table.set_column(1, "timestamp", pa.array(["not a time", "x"]))
    with pytest.raises(errors.BatchFailed) as exc:
        replace_rows(client, ds, [bad])
    assert not exc.value.transient and len(list(client.catalog.iter_batches(ds, status="failed"))) == 2
    assert client.ingestion.active_batch_ids(ds) == [done["id"]]  # the good rows stay
