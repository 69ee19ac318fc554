"""Query Service REST (``/data/foundation/query``): queries and query templates.

reference/aep_api.md §7.3. Queries run in the background: ``SUBMITTED`` -> ``IN_PROGRESS`` ->
``SUCCESS`` | ``FAILED`` with ``errors[{code, message}]``. REST queries return no rows, as in AEP.
Not modelled yet: schedules. A query runs at most as long as Query Service's guardrails allow (config:
``adhoc_timeout_s``, ``batch_timeout_s``), and ``cancel`` interrupts a running one.
"""

import time
import uuid
from datetime import UTC, datetime

from . import errors, filters
from .http import Call, Router
from .query.engine import QueryEngine, QueryError
from .store import Scope
from .workers import this_worker

BASE = "/data/foundation/query"
QUERY, TEMPLATE = "query", "query_template"


def _iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class QueryServiceBackend:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform

    def create_template(self, body: dict) -> dict:
        if not isinstance(body.get("sql"), str) or not body["sql"] or not isinstance(body.get("name"), str) \
                or not body["name"]:
            raise errors.QueryBadRequest("A query template needs 'sql' and 'name', each a non-empty string.")
        params = body.get("queryParameters") or {}
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise errors.QueryBadRequest("A query template's 'queryParameters' is an object of names and string "
                                         "values, e.g. {\"table\": \"events\"}.")
        now = _iso()
        tpl = {"id": str(uuid.uuid4()), "sql": body["sql"], "name": body["name"],
               "queryParameters": body.get("queryParameters") or {}, "userId": "aep-sandbox",
               "created": now, "updated": now,
               "_links": {}}
        tpl["_links"] = {"self": {"href": f"{BASE}/query-templates/{tpl['id']}"}}
        return self.scope.put(TEMPLATE, tpl["id"], tpl, name=tpl["name"])

    def template(self, tpl_id: str) -> dict:
        tpl = self.scope.get(TEMPLATE, tpl_id)
        if tpl is None:
            raise errors.QueryNotFound(f"Query template {tpl_id!r} was not found.")
        return tpl

    def submit(self, body: dict) -> dict:
        sql = body.get("sql")
        params = dict(body.get("queryParameters") or {})
        if body.get("templateId"):
            tpl = self.template(body["templateId"])
            sql = tpl["sql"]
            params = {**tpl.get("queryParameters", {}), **params}
        if not sql:
            raise errors.QueryBadRequest("A query needs 'sql' or 'templateId'.")
        if not body.get("dbName"):
            raise errors.QueryBadRequest("'dbName' is required, e.g. 'prod:all'.")
        now = _iso()
        qid = str(uuid.uuid4())
        upper = sql.upper()
        query = {"id": qid, "state": "SUBMITTED", "dbName": body["dbName"], "name": body.get("name", ""),
                 "description": body.get("description", ""),
                 "request": {"dbName": body["dbName"], "sql": sql, "name": body.get("name", ""),
                             "description": body.get("description", "")},
                 "queryParameters": params, "templateId": body.get("templateId"),
                 "rowCount": 0, "errors": [], "isCTAS": "CREATE TABLE" in upper,
                 "isInsertInto": "INSERT INTO" in upper, "elapsedTime": 0, "created": now, "updated": now,
                 "client": "API", "userId": "aep-sandbox", "worker": this_worker(),
                 "_links": {"self": {"href": f"{BASE}/queries/{qid}"},
                            "cancel": {"href": f"{BASE}/queries/{qid}", "method": "PATCH",
                                       "body": '{"op": "cancel"}'}}}
        self.scope.put(QUERY, qid, query, name=query["name"])
        self.platform.lifecycles.begin("query", qid, lambda: self.execute(qid), lane="queries")
        return query

    def execute(self, qid: str) -> None:
        query = self.scope.update(QUERY, qid, lambda q: q if q["state"] == "CANCELLED"
                                  else {**q, "state": "IN_PROGRESS", "updated": _iso()})
        if query["state"] == "CANCELLED":
            return
        started = time.monotonic()
        try:
            engine = QueryEngine(self.scope, self.platform, qid,
                                 cancelled=lambda: self.get(qid)["state"] == "CANCELLED")
            result = engine.run(query["request"]["sql"], query["queryParameters"])
        except QueryError as exc:
            state = "CANCELLED" if exc.code == "57014" else "FAILED"
            self._finish(qid, started, state=state, errors=[{"code": exc.code, "message": exc.message}])
            return
        except Exception as exc:  # any engine fault still ends the query, as AEP's would
            self._finish(qid, started, state="FAILED", errors=[{"code": "XX000", "message": f"Internal error: {exc}"}])
            raise
        self._finish(qid, started, state="SUCCESS", rowCount=result.row_count,
                     datasetsWritten=result.datasets_written)

    def _finish(self, qid: str, started: float, **fields) -> None:
        elapsed = int((time.monotonic() - started) * 1000)

        def finish(q: dict) -> dict:
            if q["state"] == "CANCELLED":  # cancelled while it ran: it stays cancelled
                fields.pop("state", None)
            return {**q, **fields, "elapsedTime": elapsed, "updated": _iso()}

        self.scope.update(QUERY, qid, finish)

    def change(self, qid: str, op: str) -> None:
        """``cancel`` a query that has not finished (a running one is interrupted), or ``soft_delete`` one so
        that listings leave it out."""
        query = self.get(qid)
        if op == "soft_delete":
            self.scope.update(QUERY, qid, lambda q: {**q, "softDeleted": True, "updated": _iso()})
            return
        if op != "cancel":
            raise errors.QueryBadRequest(f"op {op!r} is not 'cancel' or 'soft_delete'.")

        def cancel(q: dict) -> dict:
            if q["state"] not in ("SUBMITTED", "IN_PROGRESS"):
                raise errors.QueryBadRequest(f"Query {qid} is {q['state']}; only a submitted or running query "
                                             "can be cancelled.")
            return {**q, "state": "CANCELLED", "updated": _iso()}

        cancel(query)  # a clear error before touching the store
        self.scope.update(QUERY, qid, cancel)
        running = self.platform.running_queries.get(qid)
        if running is not None:
            running.stop()

    def fail_interrupted(self, qid: str) -> None:
        """End a query whose process died while it ran (recovery.py): FAILED, retryable."""
        self.scope.update(QUERY, qid, lambda q: {**q, "state": "FAILED", "updated": _iso(), "errors": [
            {"code": "57P01", "message": "The sandbox restarted while the query ran; submit it again."}]})

    def queries(self, include_soft_deleted: bool) -> list[dict]:
        return [q for q in self.scope.list(QUERY) if include_soft_deleted or not q.get("softDeleted")]

    def templates(self) -> list[dict]:
        return self.scope.list(TEMPLATE)

    def get(self, qid: str) -> dict:
        q = self.scope.get(QUERY, qid)
        if q is None:
            raise errors.QueryNotFound(f"Query {qid!r} was not found.")
        return q


def register(router: Router) -> None:
    platform = router.platform

    def backend(call: Call) -> QueryServiceBackend:
        return QueryServiceBackend(call.scope, platform)

    def submit(call: Call):
        return 202, backend(call).submit(call.json())

    def get(call: Call):
        applied = call.wait_for_change("query", call.path["id"])
        query = backend(call).get(call.path["id"])
        platform.lifecycles.observed("query", query["id"])
        return 200, query, applied

    def change(call: Call):
        backend(call).change(call.path["id"], (call.json() or {}).get("op", ""))
        return 202, {"message": "Query cancel request received", "statusCode": 202}

    def list_queries(call: Call):
        items = backend(call).queries(include_soft_deleted=call.params.get("excludeSoftDeleted", "true").lower()
                                      == "false")
        items = [q for q in items if filters.matches(q, filters.parse(call.params.getlist("property")))]
        order = call.params.get("orderby", "-created")
        items.sort(key=lambda q: q.get(order.lstrip("-+"), ""), reverse=order.startswith("-"))
        limit, start = call.int_param("limit", 20), call.int_param("start", 0)
        page = items[start:start + limit]
        # Query Service's spec: start and next are strings (its docs page by a value of the sort key; the sandbox
        # pages by position, and gives it as text).
        more = {"next": str(start + limit)} if start + limit < len(items) else {}
        return 200, {"queries": page, "_page": {"orderby": order, "start": str(start), **more, "count": len(page)},
                     "_links": {}}

    def create_template(call: Call):
        return 202, backend(call).create_template(call.json())

    def get_template(call: Call):
        return 200, backend(call).template(call.path["id"])

    def list_templates(call: Call):
        clauses = filters.parse(call.params.getlist("property"))
        items = [t for t in backend(call).templates() if filters.matches(t, clauses)]
        return 200, {"templates": items, "_page": {"count": len(items)}, "_links": {}}

    def connection_parameters(call: Call):
        if platform.pg_address is None:
            raise errors.QueryNotFound("This sandbox serves no PostgreSQL endpoint.")
        host, port = platform.pg_address
        token = call.request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return 200, {"version": 1, "username": call.scope.org, "dbName": f"{call.scope.sandbox}:all",
                     "host": host, "port": port, "token": token}

    router.add(f"{BASE}/connection_parameters", ["GET"], connection_parameters)
    router.add(f"{BASE}/queries", ["POST"], submit)
    router.add(f"{BASE}/queries", ["GET"], list_queries)
    router.add(f"{BASE}/queries/{{id}}", ["GET"], get)
    router.add(f"{BASE}/queries/{{id}}", ["PATCH"], change)
    router.add(f"{BASE}/query-templates", ["POST"], create_template)
    router.add(f"{BASE}/query-templates", ["GET"], list_templates)
    router.add(f"{BASE}/query-templates/{{id}}", ["GET"], get_template)
