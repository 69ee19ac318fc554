"""AEP SQL to DuckDB: translation pairs, and the Adobe-defined function's semantics on known events."""

import duckdb
import pytest

from aep_sandbox.query.translate import TranslationError, substitute, translate

W = "OVER (PARTITION BY u ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
DW = "OVER (PARTITION BY u ORDER BY ts NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


@pytest.mark.parametrize(("aep", "duck"), [
    ("SELECT _acme.userid FROM t", "SELECT _acme.userid FROM t"),
    ("SELECT web.webPageDetails.name FROM t", "SELECT web.webPageDetails.name FROM t"),
    (f"SELECT TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'x', 'minutes') {W} AS m FROM t",
     f"SELECT ((EPOCH_US(ts) - EPOCH_US(LAST_VALUE(CASE WHEN e = 'x' THEN ts END IGNORE NULLS) {DW})) "
     "/ 60000000.0) AS m FROM t"),
    (f"SELECT TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'x') {W} FROM t",
     f"SELECT ((EPOCH_US(ts) - EPOCH_US(LAST_VALUE(CASE WHEN e = 'x' THEN ts END IGNORE NULLS) {DW})) "
     "/ 1000000.0) FROM t"),
    ("SELECT * FROM t WHERE ts < TIMESTAMP '2026-01-01 00:00:00+00:00'",
     "SELECT * FROM t WHERE ts < CAST('2026-01-01 00:00:00+00:00' AS TIMESTAMPTZ)"),
    ("SELECT COUNT(DISTINCT _acme.userid) AS n FROM t", "SELECT COUNT(DISTINCT _acme.userid) AS n FROM t"),
    ("CREATE TABLE x AS SELECT a FROM t", "CREATE TABLE x AS SELECT a FROM t"),
    ("INSERT INTO x SELECT a FROM t", "INSERT INTO x SELECT a FROM t"),
    # Spark inlines a CTE wherever it is read; DuckDB would materialise one read twice.
    ("WITH e AS (SELECT a FROM t) SELECT * FROM e JOIN e AS f ON e.a = f.a",
     "WITH e AS NOT MATERIALIZED (SELECT a FROM t) SELECT * FROM e JOIN e AS f ON e.a = f.a"),
    # An aggregate read twice is computed once, as Spark's reused exchange computes it: the scan is not repeated.
    ("WITH k AS (SELECT DISTINCT u, e FROM t) SELECT k.e, f.e FROM k JOIN k AS f ON k.u = f.u",
     "WITH k AS MATERIALIZED (SELECT DISTINCT u, e FROM t) SELECT k.e, f.e FROM k JOIN k AS f ON k.u = f.u"),
    ("WITH g AS (SELECT e, COUNT(*) AS n FROM t GROUP BY e) SELECT * FROM g JOIN g AS h ON g.n = h.n",
     "WITH g AS MATERIALIZED (SELECT e, COUNT(*) AS n FROM t GROUP BY e) SELECT * FROM g JOIN g AS h ON g.n = h.n"),
    ("WITH g AS (SELECT e, COUNT(*) AS n FROM t GROUP BY e) SELECT * FROM g",
     "WITH g AS NOT MATERIALIZED (SELECT e, COUNT(*) AS n FROM t GROUP BY e) SELECT * FROM g"),
])
def test_translation_pairs(aep, duck):
    assert translate(aep) == [duck]


def test_a_random_cte_read_twice_keeps_one_draw_per_row():
    """Spark inlines a CTE with a random draw only when it is read once; read twice, both reads must see the
    same draw, so it is not inlined."""
    (twice,) = translate("WITH r AS (SELECT a, rand() AS x FROM t) "
                         "SELECT r.x AS x1, s.x AS x2 FROM r JOIN r AS s ON r.a = s.a")
    (once,) = translate("WITH r AS (SELECT a, rand() AS x FROM t) SELECT * FROM r")
    assert "NOT MATERIALIZED" not in twice and "NOT MATERIALIZED" in once
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(1000)")
    assert con.execute(f"SELECT COUNT(*) FROM ({twice}) WHERE x1 <> x2").fetchone()[0] == 0


def test_randn_becomes_a_normal_draw():
    (sql,) = translate("SELECT row_number() OVER (PARTITION BY u ORDER BY randn()) AS r FROM t")
    assert "RANDN" not in sql.upper() and "RANDOM()" in sql.upper()


def test_template_parameters_are_substituted_longest_first():
    assert substitute("SELECT $table_x, $table FROM $table", {"table": "a", "table_x": "b"}) == "SELECT b, a FROM a"


@pytest.mark.parametrize("bad", [
    "SELECT TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'x', 'minutes') FROM t",
    f"SELECT TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'x', 'fortnights') {W} FROM t",
    "SELEC broken",
])
def test_invalid_sql_raises_translation_error(bad):
    with pytest.raises(TranslationError):
        translate(bad)


def _events() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("CREATE TABLE t (u VARCHAR, e VARCHAR, ts TIMESTAMPTZ)")
    rows = [("a", "open", "2026-01-01 10:00:00"), ("a", "view", "2026-01-01 10:30:00"),
            ("a", "open", "2026-01-01 12:00:00"), ("a", "view", "2026-01-02 12:00:00"),
            ("b", "view", "2026-01-01 09:00:00"), ("b", "view", "2026-01-01 09:00:30")]
    con.executemany("INSERT INTO t VALUES (?, ?, ?::TIMESTAMPTZ)", [(u, e, ts + "+00") for u, e, ts in rows])
    return con


def test_time_between_previous_match_semantics():
    (sql,) = translate(f"SELECT u, e, ts, TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'open', 'minutes') {W} AS m "
                       "FROM t ORDER BY u, ts")
    got = [(u, e, m) for u, e, _, m in _events().execute(sql).fetchall()]
    assert got == [
        ("a", "open", 0.0),  # a matching row measures from itself
        ("a", "view", 30.0),
        ("a", "open", 0.0),
        ("a", "view", 1440.0),  # from the latest match, not the first
        ("b", "view", None),  # no match yet: NULL, never 0
        ("b", "view", None),
    ]


@pytest.mark.parametrize(("unit", "expected"), [("seconds", 1800.0), ("hours", 0.5), ("days", 1 / 48)])
def test_time_between_previous_match_units(unit, expected):
    (sql,) = translate(f"SELECT TIME_BETWEEN_PREVIOUS_MATCH(ts, e = 'open', '{unit}') {W} AS m FROM t "
                       "WHERE u = 'a' ORDER BY ts LIMIT 2")
    assert _events().execute(sql).fetchall()[1][0] == pytest.approx(expected)


def test_cutoff_literal_compares_in_utc():
    (sql,) = translate("SELECT COUNT(*) FROM t WHERE ts < TIMESTAMP '2026-01-01 10:15:00+00:00'")
    assert _events().execute(sql).fetchone()[0] == 3
