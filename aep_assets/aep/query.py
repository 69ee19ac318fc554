"""Query Service REST: submit queries (SQL or template), wait for them, keep templates."""

from .errors import QueryFailed, UnexpectedState
from .polling import poll, prefer_wait
from .session import AEPSession

BASE = "/data/foundation/query"


class QueryService:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    @property
    def db_name(self) -> str:
        return f"{self.session.config.sandbox_name}:all"

    def submit(self, sql: str, *, name: str, params: dict | None = None, description: str = "") -> dict:
        body = {"dbName": self.db_name, "sql": sql, "name": name, "description": description}
        if params:
            body["queryParameters"] = params
        return self.session.json("POST", f"{BASE}/queries", json=body)

    def cancel(self, query_id: str) -> None:
        self.session.json("PATCH", f"{BASE}/queries/{query_id}", json={"op": "cancel"})

    def list(self, *, state: str | None = None, limit: int = 20, orderby: str = "-created") -> list[dict]:
        params = {"limit": limit, "orderby": orderby, **({"property": f"state=={state}"} if state else {})}
        return self.session.json("GET", f"{BASE}/queries", params=params)["queries"]

    def connection_parameters(self) -> dict:
        """Where Query Service's PostgreSQL endpoint is, and the login for it (user, dbName, token)."""
        return self.session.json("GET", f"{BASE}/connection_parameters")

    def get(self, query_id: str, wait_s: float = 0) -> dict:
        return self.session.json("GET", f"{BASE}/queries/{query_id}", headers=prefer_wait(wait_s))

    def wait(self, query_id: str, timeout_s: float = 3600) -> dict:
        def done(q: dict) -> bool:
            match q["state"]:
                case "SUCCESS":
                    return True
                case "FAILED" | "KILLED" | "CANCELLED":
                    raise QueryFailed("Query", query_id, q["state"], q.get("errors"))
                case "SUBMITTED" | "IN_PROGRESS" | "QUEUED":
                    return False
                case other:
                    raise UnexpectedState(f"Query {query_id} is in state {other!r}.")

        return poll(lambda wait_s: self.get(query_id, wait_s), done, what=f"Query {query_id}", timeout_s=timeout_s)

    def select(self, sql: str, *, timeout_s: float = 600) -> "list[dict]":
        """Rows of an interactive SELECT over Query Service's PostgreSQL endpoint, which is how AEP returns
        query results (REST queries only run statements). Always over TLS (sslmode=require), as Query Service
        requires."""
        import psycopg  # only what reads rows needs the driver

        p = self.connection_parameters()
        with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                             password=p["token"], sslmode="require", connect_timeout=int(timeout_s)) as conn:
            cur = conn.execute(sql)
            names = [c.name for c in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def run(self, sql: str, *, name: str, params: dict | None = None, timeout_s: float = 3600) -> dict:
        return self.wait(self.submit(sql, name=name, params=params)["id"], timeout_s=timeout_s)
