"""Request plumbing shared by every service: gateway checks, injected faults, AEP error bodies."""

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import errors
from .platform import Platform
from .store import Scope

log = logging.getLogger("aep_sandbox")

MAX_HELD_READ_S = 30  # a read held for a change ends well within a client's usual timeout
# Held reads wait in the worker threads every request needs; at most this many hold one at a time, so they never
# take the workers other calls need (Starlette's pool has 40). A read beyond them is answered at once.
MAX_HELD_READS = 8
_HELD_READS = threading.BoundedSemaphore(MAX_HELD_READS)
# Bodies are bounded before they are read. A file upload takes what Batch Ingestion documents: a file above
# 512 MB must be sent in chunks (reference/aep_api.md §5). The JSON APIs document no limit; 10 MiB holds any
# request the APIs take (a query, a schema, a flow), and a public endpoint (IMS) takes a small form.
MAX_JSON_BODY = 10 * 1024 * 1024
MAX_FILE_BODY = 512 * 1024 * 1024
MAX_PUBLIC_BODY = 64 * 1024
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


@dataclass
class Call:
    """One parsed request handed to a handler running in a worker thread."""

    request: Request
    body: bytes
    scope: Scope | None
    platform: Platform
    request_id: str

    @property
    def params(self):
        return self.request.query_params

    @property
    def path(self) -> dict:
        return self.request.path_params

    @property
    def headers(self):
        return self.request.headers

    def wait_for_change(self, kind: str, obj_id: str) -> dict[str, str]:
        """Honours ``Prefer: wait=N`` (RFC 7240) on a read of an asynchronous object: returns when its running
        work ends or N seconds pass, with the ``Preference-Applied`` header to answer with when it waited."""
        match = _PREFER_WAIT.search(self.headers.get("prefer", ""))
        if match is None:
            return {}
        seconds = min(int(match.group(1)), MAX_HELD_READ_S)
        if not _HELD_READS.acquire(blocking=False):
            return {}  # RFC 7240: a server may ignore a preference; the client polls again after its pause
        try:
            waited = self.platform.lifecycles.settle(kind, obj_id, seconds)
        finally:
            _HELD_READS.release()
        return {"Preference-Applied": f"wait={seconds}"} if waited else {}

    def json(self, kind: type = dict) -> Any:
        """The JSON body, which must be a ``kind`` (an object, or a list for JSON Patch)."""
        if not self.body:
            raise errors.SandboxError("The request body is empty; send a JSON body.")
        try:
            body = json.loads(self.body)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise errors.SandboxError(f"The request body is not valid UTF-8 JSON: {exc}.") from None
        except RecursionError:
            raise errors.SandboxError("The request body nests arrays or objects too deeply.") from None
        if not isinstance(body, kind):
            expected = "a JSON object" if kind is dict else "a JSON array (of JSON Patch operations)"
            raise errors.SandboxError(f"The request body must be {expected}, not {type(body).__name__}.")
        return body

    def int_param(self, name: str, default: int) -> int:
        """A whole-number query parameter, at least 0."""
        raw = self.params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors.SandboxError(f"Query parameter {name}={raw!r} is not a whole number.") from None
        if value < 0:
            raise errors.SandboxError(f"Query parameter {name}={value} must be 0 or more.")
        return value

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")


Result = Response | tuple[int, Any] | tuple[int, Any, dict] | None


def render(exc: errors.SandboxError, request_id: str, extra: dict | None = None) -> Response:
    headers = {"x-request-id": request_id, **(extra or {})}
    return JSONResponse(exc.body(request_id), status_code=exc.status, headers=headers)


def gateway_scope(platform: Platform, request: Request) -> Scope:
    """Check the four platform headers as Adobe I/O's gateway does; reference/aep_api.md §1.3."""
    auth = request.headers.get("authorization", "")
    if not auth:
        raise errors.TokenMissing("Oauth token is missing")
    token = auth[7:] if auth.lower().startswith("bearer ") else ""
    client = platform.store.token_client(token) if token else None
    if client is None:
        raise errors.TokenInvalid("Oauth token is not valid")
    api_key = request.headers.get("x-api-key")
    if not api_key:
        raise errors.ApiKeyMissing("Api Key is required")
    if api_key != platform.credentials.client_id or api_key != client:
        raise errors.ApiKeyInvalid("Api Key is invalid")
    org = request.headers.get("x-gw-ims-org-id")
    if not org:
        raise errors.OrgHeaderMissing("Missing header: x-gw-ims-org-id")
    if org != platform.credentials.org_id:
        raise errors.SandboxError("The x-gw-ims-org-id header names an organization this token cannot use.")
    sandbox = request.headers.get("x-sandbox-name") or "prod"
    return platform.store.scope(org, sandbox)


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it is known to pass ``limit`` bytes: from its
    Content-Length before a byte is read, or while a body without one streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise errors.SandboxError(f"Content-Length {declared[:20]!r} is not a number of bytes.")
        if int(declared) > limit:
            raise errors.PayloadTooLarge(f"The request body of {int(declared)} bytes is larger than this endpoint "
                                         f"takes ({limit} bytes); a file above 512 MB is uploaded in chunks.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"The request body is larger than this endpoint takes ({limit} bytes).")
        chunks.append(chunk)
    return b"".join(chunks)


def endpoint(platform: Platform, handler: Callable[[Call], Result],
             *, public: bool = False, max_body: int = MAX_JSON_BODY):
    async def asgi(request: Request) -> Response:
        request_id = errors.new_request_id()
        fault = platform.faults.pick(request)
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.drop:
                return DroppedConnection()
            if fault.status:
                return _fault_response(fault, request_id)
        try:
            # The gateway's headers first: no work, not even reading the body, before a caller is known.
            scope = None if public else gateway_scope(platform, request)
            body = await bounded_body(request, MAX_PUBLIC_BODY if public else max_body)
            call = Call(request, body, scope, platform, request_id)
            result = await run_in_threadpool(handler, call)
        except errors.SandboxError as exc:
            return render(exc, request_id)
        except RecursionError:  # a body or an expression nested past any real one (a 3,000-level PQL, say)
            return render(errors.SandboxError("The request nests too deeply to be read; no AEP request needs "
                                              "that depth."), request_id)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A field of the wrong type deep in a body (a number where a string goes, a list for an object)
            # that a handler did not check by name: still the caller's 400, and the log keeps where it broke.
            log.warning("400 for %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
                        exc_info=True)
            return render(errors.SandboxError(f"A field of the request does not have the type this endpoint takes "
                                              f"({type(exc).__name__}: {exc}); check the request against AEP's "
                                              "API reference."), request_id)
        except Exception:  # a bug of the sandbox's: still AEP's error shape, never a plain-text page
            log.exception("500 for %s %s", request.method, request.url.path)
            return render(errors.InternalError("The sandbox failed on this request (a bug); see its log."),
                          request_id)
        return _to_response(result, request_id)

    return asgi


class DroppedConnection(Response):
    """The connection breaks before the response is whole: headers promise a body that never comes,
    and the server closes the socket. The request itself was never handled."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _fault_response(fault, request_id: str) -> Response:
    if fault.status == 401:
        exc: errors.SandboxError = errors.TokenInvalid("Oauth token is not valid")
    elif fault.status == 429:
        exc = errors.Throttled("Too many requests; slow down.")
    else:
        exc = errors.InjectedServerError("The service is temporarily unavailable.")
        exc.status = fault.status
        exc.code = f"GW-{fault.status}0-{fault.status}"
    extra = {}
    if fault.retry_after is not None:
        extra["Retry-After"] = str(int(fault.retry_after) if fault.retry_after == int(fault.retry_after)
                                   else fault.retry_after)
    return render(exc, request_id, extra)


def _to_response(result: Result, request_id: str) -> Response:
    if isinstance(result, Response):
        result.headers["x-request-id"] = request_id
        return result
    if result is None:
        return Response(status_code=200, headers={"x-request-id": request_id})
    status, body, *rest = result
    headers = {"x-request-id": request_id, **(rest[0] if rest else {})}
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


class Router:
    """Collects a service's routes with the shared plumbing applied."""

    def __init__(self, platform: Platform) -> None:
        self.platform, self.routes = platform, []

    def add(self, path: str, methods: list[str], handler: Callable[[Call], Result], public: bool = False,
            max_body: int = MAX_JSON_BODY) -> None:
        asgi = endpoint(self.platform, handler, public=public, max_body=max_body)
        self.routes.append(Route(path, asgi, methods=methods))
