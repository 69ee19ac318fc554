"""Query Service's interactive endpoint: the PostgreSQL wire protocol (v3), as psql and psycopg speak it.

Connect with the values of ``GET /data/foundation/query/connection_parameters``: dbname
``{sandbox}:all`` (or ``{sandbox}:{table}``), user = the org id, password = an IMS access token.
Both the simple and the extended query protocol are served; results are text, at most 50,000 rows
per SELECT (Query Service's cap for PostgreSQL clients). Besides what the query engine runs:
``SHOW TABLES``, ``SET name = value`` (``auto_to_json=true`` turns struct and array columns into
JSON text), and ``BEGIN``/``COMMIT``/``ROLLBACK``, accepted and ignored: queries are not transactional.

TLS: an SSLRequest is answered 'S' and the session continues over TLS with the sandbox's self-signed
certificate (see tls.py), so ``sslmode=require`` works as AEP asks; plain connections are served too.
"""

import io
import json
import logging
import re
import secrets
import socketserver
import struct
import threading
from datetime import date, datetime
from decimal import Decimal

from .errors import SandboxError
from .query.blocks import replace_in_code
from .query.engine import QueryEngine, QueryError, QueryResult
from .query.pg_catalog import PG_SETTINGS
from .tls import server_context

log = logging.getLogger("aep_sandbox.pgwire")

MAX_ROWS = 50_000
# What the server reads before it trusts a client: PostgreSQL's own startup packet limit, and room for a
# password message. After authentication a message may carry a long statement, within reason.
MAX_STARTUP_PACKET = 10_000
MAX_PRE_AUTH_MESSAGE = 65_536
MAX_MESSAGE = 64 * 1024 * 1024
CLIENT_CLOSED = "the client closed the connection"
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, PROTOCOL_V3 = 80877103, 80877104, 80877102, 196608
SET_STATEMENT = re.compile(r"^\s*SET\s+([A-Za-z_][\w.]*)\s*(?:=|\s+TO\s+)\s*(.+?)\s*;?\s*$", re.I | re.S)
SERVER_SETTINGS = {"transaction isolation level": "read committed", **PG_SETTINGS}
NO_OPS = {"BEGIN", "START TRANSACTION", "COMMIT", "END", "ROLLBACK"}
OIDS = {"BOOLEAN": 16, "BIGINT": 20, "HUGEINT": 1700, "INTEGER": 23, "SMALLINT": 21, "TINYINT": 21,
        "UBIGINT": 1700, "UINTEGER": 20, "USMALLINT": 23, "UTINYINT": 21, "DOUBLE": 701, "FLOAT": 700,
        "DATE": 1082, "TIMESTAMP": 1114, "TIMESTAMP WITH TIME ZONE": 1184, "VARCHAR": 25, "BLOB": 17}
TEXT_OID = 25


class ProtocolError(Exception):
    pass


def pg_type(duckdb_type: str) -> int:
    if duckdb_type.startswith("DECIMAL"):
        return 1700
    return OIDS.get(duckdb_type.split("(")[0].strip(), TEXT_OID)


def pg_text(value, as_json: bool) -> bytes | None:
    """A value in PostgreSQL's text format; structs and lists as PG row/array text, or JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, (date, Decimal, int, float)):
        return str(value).encode()
    if isinstance(value, (dict, list)):
        if as_json:
            return json.dumps(value, default=str).encode()
        return _composite(value).encode()
    if isinstance(value, bytes):
        return b"\\x" + value.hex().encode()
    return str(value).encode()


def _composite(value) -> str:
    def item(v) -> str:
        if v is None:
            return ""
        text = _composite(v) if isinstance(v, (dict, list)) else (pg_text(v, False) or b"").decode()
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if re.search(r'[,()"\\\s{}]', text) else text
    if isinstance(value, dict):
        return "(" + ",".join(item(v) for v in value.values()) + ")"
    return "{" + ",".join(item(v) if v is not None else "NULL" for v in value) + "}"


def literal(value: str | None) -> str:
    """A bound parameter inlined as a SQL literal (the engine has no server-side parameters)."""
    if value is None:
        return "NULL"
    if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value):
        return value
    return "'" + value.replace("'", "''") + "'"


PARAMETER = re.compile(r"\$(\d+)\b")


def bind(sql: str, values: list[str | None]) -> str:
    """``$n`` replaced by its value as a literal, only where it is a parameter: never inside a string, a quoted
    name or a comment, as PostgreSQL reads them."""
    def value(m: re.Match) -> str:
        n = int(m.group(1))
        if not 1 <= n <= len(values):
            raise QueryError("08P01", f"bind message supplies {len(values)} parameters, but the statement uses ${n}")
        return literal(values[n - 1])

    return replace_in_code(sql, PARAMETER, value)


class Session(socketserver.StreamRequestHandler):
    """One client connection."""

    server: "PGServer"

    def setup(self) -> None:
        super().setup()
        self.settings: dict[str, str] = {}
        self.statements: dict[str, str] = {}
        self.portals: dict[str, tuple[str, list[QueryResult] | None]] = {}
        self.failed = False  # an extended-protocol error: skip to Sync
        self.engine: QueryEngine | None = None  # set once the client has authenticated

    # -- framing
    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise ProtocolError(CLIENT_CLOSED)
        return data

    def _length(self, limit: int) -> int:
        """A message's length word, refused unless it is in [4, limit]: nothing is buffered on a promise."""
        length = struct.unpack("!i", self._read(4))[0]
        if not 4 <= length <= limit:
            raise ProtocolError(f"invalid message length {length} (allowed 4 to {limit})")
        return length

    def _message(self) -> tuple[bytes, bytes]:
        kind = self._read(1)
        limit = MAX_MESSAGE if self.engine is not None else MAX_PRE_AUTH_MESSAGE
        return kind, self._read(self._length(limit) - 4)

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        self.wfile.write(kind + struct.pack("!i", len(payload) + 4) + payload)

    def _error(self, code: str, message: str, severity: str = "ERROR") -> None:
        fields = [b"S" + severity.encode(), b"V" + severity.encode(), b"C" + code.encode(), b"M" + message.encode()]
        self._send(b"E", b"\0".join(fields) + b"\0\0")

    def _ready(self) -> None:
        self._send(b"Z", b"I")
        self.wfile.flush()

    # -- connection
    def _start_tls(self) -> None:
        """The rest of the session over TLS: the client waits for 'S' before its handshake, so nothing it sent
        is left in the plain-text buffer."""
        self.connection = self.server.ssl_context.wrap_socket(self.connection, server_side=True)
        self.request = self.connection
        self.rfile = self.connection.makefile("rb")
        self.wfile = _SocketWriter(self.connection)
        self.encrypted = True

    def handle(self) -> None:
        self.admitted = False
        self.encrypted = False
        self.logging_in = True  # holds one of the server's login places until authenticated or gone
        # PostgreSQL's authentication_timeout: the login must finish in time, or the connection goes.
        self.connection.settimeout(self.server.auth_timeout_s)
        try:
            if not self._startup():
                return
            self._serve()
        except ProtocolError as exc:
            if str(exc) != CLIENT_CLOSED:  # one line, no traceback: a malformed packet is the client's fault
                log.warning("closing the connection from %s: %s", self.client_address[0], exc)
        except TimeoutError:
            if self.logging_in:
                log.warning("closing the connection from %s: no login within %gs (authentication_timeout)",
                            self.client_address[0], self.server.auth_timeout_s)
        except (ConnectionError, OSError):
            return
        finally:
            self._logged_in()
            if self.admitted:
                self.server.release()

    def _logged_in(self) -> None:
        if self.logging_in:
            self.logging_in = False
            self.server.login_done()

    def _startup(self) -> bool:
        while True:
            length = self._length(MAX_STARTUP_PACKET)
            if length < 8:
                raise ProtocolError(f"invalid length of startup packet: {length}")
            body = self._read(length - 4)
            code = struct.unpack("!i", body[:4])[0]
            if code == SSL_REQUEST and self.server.ssl_context is not None and not self.encrypted:
                self.wfile.write(b"S")
                self.wfile.flush()
                self._start_tls()
                continue
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.wfile.write(b"N")  # no GSS encryption: the client goes on as it is
                self.wfile.flush()
                continue
            if code == CANCEL_REQUEST:
                return False
            if code != PROTOCOL_V3:
                self._error("08P01", f"Unsupported protocol version {code >> 16}.{code & 0xFFFF}.", "FATAL")
                return False
            parts = body[4:].split(b"\0")
            try:
                params = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]}
            except UnicodeDecodeError:
                raise ProtocolError("the startup packet's parameters are not UTF-8") from None
            break
        self._send(b"R", struct.pack("!i", 3))  # AuthenticationCleartextPassword
        self.wfile.flush()
        kind, body = self._message()
        if kind != b"p":
            raise ProtocolError("expected a password message")
        return self._authenticate(params, body.rstrip(b"\0").decode("utf-8", "replace"))

    def _authenticate(self, params: dict[str, str], password: str) -> bool:
        platform = self.server.platform
        org, dbname = params.get("user", ""), params.get("database", "")
        if org != platform.credentials.org_id or platform.store.token_client(password) is None:
            # As PostgreSQL, the message names the user that was given, never the one that would have worked.
            self._error("28P01", f'password authentication failed for user "{org[:64]}": the user is the org id '
                                 "(connection_parameters' username) and the password a valid IMS access token.",
                        "FATAL")
            return False
        sandbox, _, scope = dbname.partition(":")
        if not sandbox or not scope:
            self._error("3D000", f"database {dbname!r} is not '{{sandbox}}:all' or '{{sandbox}}:{{table}}', "
                                 "e.g. 'prod:all'.", "FATAL")
            return False
        try:
            scope = platform.store.scope(org, sandbox)
        except SandboxError as exc:  # the dbname becomes a folder: it must be a sandbox name
            self._error("3D000", f"database {dbname!r}: {exc.detail}", "FATAL")
            return False
        self.admitted = self.server.admit()  # a session's place is taken once it has logged in
        if not self.admitted:
            self._error("53300", f"sorry, too many clients already (at most {self.server.max_connections})", "FATAL")
            self.wfile.flush()
            return False
        self.connection.settimeout(None)
        self._logged_in()
        self.engine = QueryEngine(scope, platform)
        self._send(b"R", struct.pack("!i", 0))
        for key, value in (("server_version", "15.0 (AEP Query Service, local sandbox)"),
                           ("server_encoding", "UTF8"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                           ("TimeZone", "UTC"), ("integer_datetimes", "on"),
                           ("standard_conforming_strings", "on")):
            self._send(b"S", key.encode() + b"\0" + value.encode() + b"\0")
        self._send(b"K", struct.pack("!ii", secrets.randbits(31), secrets.randbits(31)))  # no thread id leaks
        self._ready()
        return True

    def _serve(self) -> None:
        handlers = {b"Q": self._simple, b"P": self._parse, b"B": self._bind, b"D": self._describe,
                    b"E": self._execute, b"C": self._close}
        while True:
            kind, body = self._message()
            if kind == b"X":
                return
            if kind == b"S":
                self.failed = False
                self._ready()
            elif kind == b"H":
                self.wfile.flush()
            elif kind in handlers:
                if self.failed and kind != b"Q":
                    continue
                try:
                    handlers[kind](body)
                except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
                    raise ProtocolError(f"malformed {kind.decode(errors='replace')!r} message ({exc})") from None
            else:
                self._error("08P01", f"Unsupported message type {kind!r}.")
                self._ready()

    # -- running statements
    def _run(self, sql: str) -> list[QueryResult]:
        text = sql.strip().rstrip(";").strip()
        upper = " ".join(text.upper().split())
        if not text:
            return []
        if upper in NO_OPS:
            return [QueryResult(kind=upper.split()[0])]
        if upper == "SHOW TABLES":
            return [self._show_tables()]
        if upper.startswith("SHOW "):
            return [self._show_setting(" ".join(text.split()[1:]).lower())]
        setting = SET_STATEMENT.match(text)
        if setting and not setting.group(1).startswith("@"):
            self.settings[setting.group(1).lower()] = setting.group(2).strip("'\"").lower()
            return [QueryResult(kind="SET")]
        return self.engine.run_each(sql, fetch=True, max_rows=MAX_ROWS)

    def _show_setting(self, name: str) -> QueryResult:
        """``SHOW <setting>``, as drivers ask at connect time: what the session SET, or the server's value."""
        value = self.settings.get(name, SERVER_SETTINGS.get(name))
        if value is None:
            raise QueryError("42704", f'unrecognized configuration parameter "{name}"')
        column = name.replace(" ", "_")
        return QueryResult(row_count=1, columns=[column], types=["VARCHAR"], rows=[(value,)])

    def _show_tables(self) -> QueryResult:
        rows = []
        for ds in sorted(self.engine.catalog.datasets(), key=lambda d: d["name"]):
            table = (ds.get("tags") or {}).get("adobe/pqs/table")
            if table:
                rows.append((table[0], ds["id"], ds["name"], ds.get("description", ""), "false"))
        return QueryResult(row_count=len(rows), columns=["name", "dataSetId", "dataSet", "description", "resolved"],
                           types=["VARCHAR"] * 5, rows=rows)

    def _row_description(self, result: QueryResult) -> None:
        if not result.columns:
            self._send(b"n")  # NoData
            return
        payload = struct.pack("!h", len(result.columns))
        for name, kind in zip(result.columns, result.types, strict=True):
            payload += name.encode() + b"\0" + struct.pack("!ihihih", 0, 0, pg_type(kind), -1, -1, 0)
        self._send(b"T", payload)

    def _data_rows(self, result: QueryResult) -> None:
        as_json = self.settings.get("auto_to_json") == "true"
        for row in result.rows:
            payload = struct.pack("!h", len(row))
            for value in row:
                text = pg_text(value, as_json)
                payload += struct.pack("!i", -1) if text is None else struct.pack("!i", len(text)) + text
            self._send(b"D", payload)

    def _complete(self, result: QueryResult) -> None:
        tag = {"SELECT": f"SELECT {result.row_count}", "CREATE TABLE": f"SELECT {result.row_count}",
               "INSERT": f"INSERT 0 {result.row_count}"}.get(result.kind, result.kind)
        self._send(b"C", tag.encode() + b"\0")

    def _fail(self, exc: QueryError) -> None:
        self._error(exc.code, exc.message)

    def _simple(self, body: bytes) -> None:
        sql = body.rstrip(b"\0").decode()
        try:
            results = self._run(sql)
        except QueryError as exc:
            self._fail(exc)
            results = None
        except Exception as exc:  # a fault of the sandbox is the client's error response, not a dropped session
            log.exception("query failed")
            self._fail(QueryError("XX000", f"Internal error: {exc}"))
            results = None
        if results is not None:
            if not results:
                self._send(b"I")  # EmptyQueryResponse
            for result in results:
                if result.kind == "SELECT" and result.columns:
                    self._row_description(result)
                    self._data_rows(result)
                self._complete(result)
        self._ready()

    # -- extended protocol
    def _parse(self, body: bytes) -> None:
        name, rest = body.split(b"\0", 1)
        query, _ = rest.split(b"\0", 1)
        self.statements[name.decode()] = query.decode()
        self._send(b"1")

    def _bind(self, body: bytes) -> None:
        portal, rest = body.split(b"\0", 1)
        statement, rest = rest.split(b"\0", 1)
        n_formats = struct.unpack("!h", rest[:2])[0]
        formats = struct.unpack(f"!{n_formats}h", rest[2:2 + 2 * n_formats])
        pos = 2 + 2 * n_formats
        n_params = struct.unpack("!h", rest[pos:pos + 2])[0]
        pos += 2
        values: list[str | None] = []
        for i in range(n_params):
            size = struct.unpack("!i", rest[pos:pos + 4])[0]
            pos += 4
            if size < 0:
                values.append(None)
                continue
            if (formats[i] if n_formats > 1 else formats[0] if n_formats else 0) != 0:
                self._error("0A000", "Binary parameters are not supported; send parameters as text.")
                self.failed = True
                return
            values.append(rest[pos:pos + size].decode())
            pos += size
        try:
            bound = bind(self.statements.get(statement.decode(), ""), values)
        except QueryError as exc:
            self._fail(exc)
            self.failed = True
            return
        self.portals[portal.decode()] = (bound, None)
        self._send(b"2")

    def _portal_results(self, name: str) -> list[QueryResult] | None:
        sql, results = self.portals[name]
        if results is None:
            try:
                results = self._run(sql)
            except Exception as exc:  # QueryError, or a fault of the sandbox: an error response either way
                self._fail(exc if isinstance(exc, QueryError) else QueryError("XX000", f"Internal error: {exc}"))
                self.failed = True
                return None
            self.portals[name] = (sql, results)
        return results

    def _describe(self, body: bytes) -> None:
        kind, name = body[:1], body[1:].rstrip(b"\0").decode()
        if kind == b"S":  # parameters are inlined as text, so they are described as unknown
            sql = self.statements.get(name, "")
            count = len(set(re.findall(r"\$(\d+)\b", sql)))
            self._send(b"t", struct.pack("!h", count) + struct.pack(f"!{count}i", *([0] * count)))
            self._send(b"n")  # columns are known once bound
            return
        results = self._portal_results(name)
        if results is not None:
            last = results[-1] if results else QueryResult(kind="EMPTY")
            if last.kind == "SELECT":
                self._row_description(last)
            else:
                self._send(b"n")

    def _execute(self, body: bytes) -> None:
        name = body.split(b"\0", 1)[0].decode()
        results = self._portal_results(name)
        if results is None:
            return
        if not results:
            self._send(b"I")
            return
        for result in results:
            if result.kind == "SELECT" and result.columns:
                self._data_rows(result)
            self._complete(result)

    def _close(self, body: bytes) -> None:
        kind, name = body[:1], body[1:].rstrip(b"\0").decode()
        (self.statements if kind == b"S" else self.portals).pop(name, None)
        self._send(b"3")


class _SocketWriter(io.BufferedIOBase):
    """What the session writes through once it is on TLS: every byte sent at once. A file object, because
    socketserver flushes and closes it when the session ends."""

    def __init__(self, sock) -> None:
        super().__init__()
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)


class PGServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], platform) -> None:
        super().__init__(address, Session)
        self.platform = platform
        self.ssl_context = server_context(platform.config.data_dir)
        self.max_connections = platform.config.pg_max_connections
        self.auth_timeout_s = platform.config.pg_auth_timeout_s
        self._sessions = threading.BoundedSemaphore(self.max_connections)
        # Clients still logging in: bounded, so unfinished logins hold neither sessions nor unbounded threads.
        self._logins = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address) -> None:
        if not self._logins.acquire(blocking=False):
            log.warning("turning away %s: %d clients are already logging in", client_address[0],
                        self.max_connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def login_done(self) -> None:
        self._logins.release()

    def admit(self) -> bool:
        return self._sessions.acquire(blocking=False)

    def release(self) -> None:
        self._sessions.release()


def start_pg_server(platform, host: str, port: int) -> PGServer:
    """Serve the wire protocol on a background thread; ``port`` 0 picks a free one."""
    server = PGServer((host, port), platform)
    threading.Thread(target=server.serve_forever, name="aep-sandbox-pgwire", daemon=True).start()
    log.info("Query Service PostgreSQL endpoint on %s:%d", *server.server_address[:2])
    return server
