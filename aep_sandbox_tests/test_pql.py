"""The PQL subset compiles to SQL that selects the right profiles."""

import duckdb
import pytest

from aep_sandbox.pql import PQLError, compile_pql

PROFILES = {"a": {"_acme.propensity": 0.95, "loyalty.tier": "gold"},
            "b": {"_acme.propensity": 0.5, "loyalty.tier": "silver"},
            "c": {"_acme.propensity": 0.1, "loyalty.tier": "gold"},
            "d": {"_acme.propensity": None, "loyalty.tier": None}}
TYPES = {"_acme.propensity": "DOUBLE", "loyalty.tier": "VARCHAR"}


def _select(pql: str, profiles: dict = PROFILES) -> list[str]:
    """Lay the profiles out as the profile store does (p0, p1, ... in path order) and apply the PQL."""
    compiled = compile_pql(pql)
    con = duckdb.connect()
    cols = ", ".join(f'"p{i}" {TYPES[p]}' for i, p in enumerate(compiled.paths))
    con.execute(f"CREATE TABLE t (identity VARCHAR, {cols})")
    con.executemany(f"INSERT INTO t VALUES (?{', ?' * len(compiled.paths)})",
                    [(k, *(v[p] for p in compiled.paths)) for k, v in profiles.items()])
    return [r[0] for r in con.execute(f"SELECT identity FROM t WHERE {compiled.sql} ORDER BY identity").fetchall()]


@pytest.mark.parametrize(("pql", "expected"), [
    ("_acme.propensity >= 0.9", ["a"]),
    ("_acme.propensity >= 0.2 and _acme.propensity <= 0.93", ["b"]),
    ("_acme.propensity < 0.2 or _acme.propensity > 0.9", ["a", "c"]),
    ("not (_acme.propensity < 0.2)", ["a", "b"]),
])
def test_numeric_ranges(pql, expected):
    assert _select(pql) == expected


def test_strings_and_two_paths():
    assert compile_pql('_acme.propensity > 0.2 and loyalty.tier = "gold"').paths == ["_acme.propensity",
                                                                                      "loyalty.tier"]
    assert _select('_acme.propensity > 0.2 and loyalty.tier = "gold"') == ["a"]
    assert _select('loyalty.tier != "gold"') == ["b"]


@pytest.mark.parametrize("bad", ["_acme.propensity >=", "propensity 0.5", "(_acme.x > 1", "_acme.x > 1 2",
                                 "_acme.x > @"])
def test_invalid_pql_is_rejected_with_a_reason(bad):
    with pytest.raises(PQLError):
        compile_pql(bad)
