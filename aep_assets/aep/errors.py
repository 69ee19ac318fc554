"""One exception tree for every AEP failure, mapped from the HTTP status in one place."""

from typing import Any


class AEPError(Exception):
    """Base class of every error this client raises."""


class AEPStatusError(AEPError):
    """AEP answered with an error status. Carries what AEP said and what to do about it."""

    hint = "Check the request against AEP's API reference."

    def __init__(self, status: int, method: str, url: str, code: str | None, title: str | None,
                 detail: str | None, request_id: str | None, body: Any = None) -> None:
        self.status, self.method, self.url = status, method, url
        self.code, self.title, self.detail, self.request_id, self.body = code, title, detail, request_id, body
        what = "; ".join(p for p in (title, detail) if p) or "no detail"
        super().__init__(f"{method} {url} failed with {status}{f' {code}' if code else ''}: {what}. {self.hint}"
                         f"{f' (x-request-id {request_id})' if request_id else ''}")


class BadRequest(AEPStatusError):
    hint = "Fix the request body or parameters named above."


class Unauthorized(AEPStatusError):
    hint = "The token was refused even after a refresh: check AEP_CLIENT_ID, AEP_CLIENT_SECRET and AEP_ORG_ID."


class Forbidden(AEPStatusError):
    hint = "Give the API credential a role with access to this sandbox and resource in AEP's Permissions."


class NotFound(AEPStatusError):
    hint = "Check the id and the x-sandbox-name (AEP_SANDBOX_NAME)."


class NotAcceptable(AEPStatusError):
    hint = "Send a versioned Accept header, e.g. application/vnd.adobe.xed+json; version=1."


class PreconditionFailed(AEPStatusError):
    hint = "The resource changed since it was read: fetch its etag again and retry."


class RateLimited(AEPStatusError):
    hint = "AEP throttled the calls and retries ran out; lower the request rate or raise max_retries."


class ServerError(AEPStatusError):
    hint = "AEP failed on its side and retries ran out; try again later."


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 406: NotAcceptable,
              412: PreconditionFailed, 429: RateLimited}


def error_class(status: int) -> type[AEPStatusError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, AEPStatusError)


def parse_error_body(body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, title, detail) from any of AEP's error shapes; reference/aep_api.md §11.1."""
    if not isinstance(body, dict):
        return None, None, str(body)[:500] if body else None
    if "error_code" in body:  # Adobe I/O gateway
        return str(body["error_code"]), body.get("message"), None
    if "error" in body and "error_description" in body:  # IMS (OAuth2)
        return body["error"], body["error_description"], None
    code = None
    if isinstance(body.get("type"), str) and "/errors/" in body["type"]:
        code = body["type"].rsplit("/", 1)[-1]
    detail = body.get("detail") or body.get("message")
    report = body.get("report") or {}
    if not detail and isinstance(report, dict):
        detail = report.get("detailed-message")
    return code or body.get("code"), body.get("title"), detail


class AEPTimeout(AEPError):
    """A poll reached its deadline before the operation finished."""


class OperationFailed(AEPError):
    """An asynchronous operation reached a failed terminal state (reported inside a 200)."""

    def __init__(self, what: str, ident: str, state: str, errors: Any) -> None:
        self.what, self.ident, self.state, self.errors = what, ident, state, errors
        super().__init__(f"{what} {ident} ended {state}: {errors}")


class BatchFailed(OperationFailed):
    TRANSIENT_CODES = frozenset({"INTERNAL", "500", "502", "503"})

    @property
    def transient(self) -> bool:
        """The platform failed, not the data: the same files may succeed in a new batch."""
        codes = {str(e.get("code")) for e in self.errors} if isinstance(self.errors, list) else set()
        return bool(codes) and codes <= self.TRANSIENT_CODES


class QueryFailed(OperationFailed):
    pass


class SegmentJobFailed(OperationFailed):
    pass


class FlowRunFailed(OperationFailed):
    pass


class UnexpectedState(AEPError):
    """AEP reported a state this client does not know how to handle."""
