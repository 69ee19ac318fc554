"""Sandbox errors, each a tiny class rendered in the body shape AEP's service uses."""

import uuid
from datetime import UTC, datetime


class SandboxError(Exception):
    status = 400
    code = "BadRequest"
    title = "Bad request"
    style = "problem"  # problem | gateway | catalog

    def __init__(self, detail: str = "", **report) -> None:
        super().__init__(detail)
        self.detail = detail
        self.report = report

    def body(self, request_id: str) -> dict:
        if self.style == "gateway":
            return {"error_code": self.code, "message": self.detail or self.title}
        if self.style == "catalog":
            return {"type": "http://ns.adobe.com/aep/errors/" + self.code, "title": self.title,
                    "status": self.status, "detail": self.detail, "report": {"requestId": request_id}}
        return {
            "type": f"http://ns.adobe.com/aep/errors/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "report": {"registryRequestId": request_id,
                       "timestamp": datetime.now(UTC).strftime("%m-%d-%Y %H:%M:%S"),
                       "detailed-message": self.detail, "sub-errors": [], **self.report},
        }


def new_request_id() -> str:
    return str(uuid.uuid4())


# Gateway (Adobe I/O) errors: reference/aep_api.md §11.1 (1).
class TokenMissing(SandboxError):
    status, code, title, style = 401, "403010", "Oauth token is missing", "gateway"


class TokenInvalid(SandboxError):
    status, code, title, style = 401, "401013", "Oauth token is not valid", "gateway"


class ApiKeyMissing(SandboxError):
    status, code, title, style = 403, "403000", "Api Key is required", "gateway"


class ApiKeyInvalid(SandboxError):
    status, code, title, style = 403, "403003", "Api Key is invalid", "gateway"


class OrgHeaderMissing(SandboxError):
    status, code, title, style = 400, "400003", "Missing header: x-gw-ims-org-id", "gateway"


class CredentialsRefused(SandboxError):
    status, code, title = 403, "DLZ-4030-403", "No scoped credentials"


class PayloadTooLarge(SandboxError):
    status, code, title = 413, "GW-4130-413", "Payload too large"


class Throttled(SandboxError):
    status, code, title, style = 429, "429001", "Too many requests", "gateway"


class InjectedServerError(SandboxError):
    status, code, title = 503, "GW-5030-503", "Service unavailable"


# Schema Registry: reference/aep_api.md §3.8.
class XdmNotFound(SandboxError):
    status, code, title = 404, "XDM-1010-404", "Resource not found"


class TitleNotUnique(SandboxError):
    status, code, title = 400, "XDM-1521-400", "Title not unique"


class FieldOutsideTenant(SandboxError):
    status, code, title = 400, "XDM-1020-400", "Custom field outside the tenant namespace"


class UnionWithoutIdentity(SandboxError):
    status, code, title = 400, "XDM-1528-400", "Union descriptor validation error"


class AcceptVersionMissing(SandboxError):
    status, code, title = 400, "XDM-1006-400", "version must be supplied in the accept header"


class DescriptorInvalid(SandboxError):
    status, code, title = 400, "XDM-1401-400", "Descriptor validation error"


# Catalog, ingestion, query, flow, segmentation.
class CatalogNotFound(SandboxError):
    status, code, title, style = 404, "CAT-1004-404", "Not found", "catalog"


class CatalogBadRequest(SandboxError):
    status, code, title, style = 400, "CAT-1001-400", "Bad request", "catalog"


class IngestionBadRequest(SandboxError):
    status, code, title = 400, "INGEST-1001-400", "Bad request"


class IngestionNotFound(SandboxError):
    status, code, title = 404, "INGEST-1004-404", "Not found"


class QueryNotFound(SandboxError):
    status, code, title = 404, "QS-1004-404", "Query not found"


class QueryBadRequest(SandboxError):
    status, code, title = 400, "QS-1001-400", "Bad request"


class FlowNotFound(SandboxError):
    status, code, title = 404, "FLOW-1004-404", "Not found"


class FlowBadRequest(SandboxError):
    status, code, title = 400, "FLOW-1001-400", "Bad request"


class SegmentNotFound(SandboxError):
    status, code, title = 404, "UPS-1004-404", "Not found"


class SegmentBadRequest(SandboxError):
    status, code, title = 400, "UPS-1001-400", "Bad request"


class DataAccessNotFound(SandboxError):
    status, code, title, style = 404, "DAS-1404-404", "Not found", "catalog"


class RangeNotSatisfiable(SandboxError):
    status, code, title, style = 416, "DAS-1416-416", "Range not satisfiable", "catalog"


class FlowPreconditionFailed(SandboxError):
    status, code, title = 412, "CONNECTOR-1412-412", "Precondition failed"


class InternalError(SandboxError):
    status, code, title = 500, "GW-5000-500", "Internal error"
