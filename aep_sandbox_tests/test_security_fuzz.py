"""Malformed input never gets a 500: every documented endpoint answers bodies of the wrong shape, bad
query parameters and bytes that are not UTF-8 with a 4xx in AEP's error shape."""

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .contract import headers


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A sandbox of this module's: whatever the fuzzer manages to create stays out of other tests' way."""
    with SandboxProcess(tmp_path_factory.mktemp("fuzz")) as sb:
        yield sb, client_for(sb)

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=12)
# Bodies that look like the endpoint's own, with fields of the wrong type: where shape bugs hide.
NEAR = st.dictionaries(st.sampled_from(["name", "sql", "dbName", "datasetId", "schemaRef", "expression", "op",
                                        "fields", "params", "flowSpec", "connectionSpec", "inputFormat", "allOf",
                                        "filter", "destination", "queryParameters", "templateId", "tags",
                                        "sourceConnectionIds", "targetConnectionIds", "transformations"]),
                       JSON, max_size=6)
ENDPOINTS = [
    ("POST", "/data/foundation/catalog/dataSets"),
    ("PATCH", "/data/foundation/catalog/dataSets/ds0"),
    ("POST", "/data/foundation/import/batches"),
    ("POST", "/data/foundation/query/queries"),
    ("PATCH", "/data/foundation/query/queries/q0"),
    ("POST", "/data/foundation/query/query-templates"),
    ("POST", "/data/foundation/schemaregistry/tenant/schemas"),
    ("POST", "/data/foundation/schemaregistry/tenant/fieldgroups"),
    ("POST", "/data/foundation/schemaregistry/tenant/descriptors"),
    ("POST", "/data/foundation/flowservice/flows"),
    ("POST", "/data/foundation/flowservice/targetConnections"),
    ("POST", "/data/foundation/flowservice/sourceConnections"),
    ("POST", "/data/core/ups/segment/definitions"),
    ("POST", "/data/core/ups/segment/jobs"),
    ("POST", "/data/core/ups/audiences"),
    ("POST", "/data/core/ups/export/jobs"),
]
LISTS = ["/data/foundation/catalog/dataSets", "/data/foundation/query/queries", "/data/core/ups/audiences",
         "/data/core/ups/segment/definitions", "/data/foundation/schemaregistry/tenant/schemas"]


def _aep_shaped(r: requests.Response) -> bool:
    body = r.json()
    return isinstance(body, dict) and ("type" in body or "error_code" in body or "message" in body
                                       or "title" in body)


@settings(max_examples=80, deadline=None, derandomize=True,  # the same examples on every run: CI stays reproducible
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(ENDPOINTS), body=st.one_of(JSON, NEAR))
def test_bodies_of_any_shape_get_a_4xx_in_aeps_shape(fuzzed, endpoint, body):
    (sandbox, client), (method, path) = fuzzed, endpoint
    h = {**headers(client), "Content-Type": "application/json"}
    r = requests.request(method, f"{sandbox.url}{path}", headers=h, data=json.dumps(body), timeout=30)
    assert r.status_code < 500, (method, path, body, r.text)
    if r.status_code >= 400:
        assert _aep_shaped(r), r.text


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_bytes_that_are_not_utf8_get_a_400(fuzzed, method, path):
    sandbox, client = fuzzed
    h = {**headers(client), "Content-Type": "application/json"}
    r = requests.request(method, f"{sandbox.url}{path}", headers=h, data=b'{"name": "\xff\xfe"}', timeout=30)
    assert r.status_code == 400 and _aep_shaped(r), r.text


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("value", ["abc", "-1", "1e9", "", "9" * 40])
def test_bad_paging_parameters_get_a_4xx(fuzzed, path, value):
    sandbox, client = fuzzed
    r = requests.get(f"{sandbox.url}{path}", headers=headers(client), params={"limit": value, "start": value},
                     timeout=30)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert _aep_shaped(r), r.text
