"""The sandbox's ASGI application: every service's routes behind one gateway."""

import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from . import (
    audiences,
    catalog,
    data_access,
    flow_service,
    ims,
    ingestion,
    landing_zone,
    query_service,
    sandboxes,
    schema_registry,
    segmentation,
)
from .config import SandboxConfig
from .errors import new_request_id
from .http import Router
from .platform import Platform
from .query import accelerated
from .recovery import recover

SERVICES = (ims, schema_registry, catalog, ingestion, data_access, query_service, flow_service, segmentation,
            audiences, landing_zone, sandboxes)


def create_app(config: SandboxConfig) -> Starlette:
    platform = Platform(config)
    recover(platform)  # what a crashed process left in flight ends, retryable
    platform.segment_job_listeners.append(accelerated.refresh)
    platform.start()
    router = Router(platform)
    for service in SERVICES:
        service.register(router)

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"type": "http://ns.adobe.com/aep/errors/GW-4040-404", "title": "Not found",
                             "status": 404, "detail": f"No AEP endpoint at {request.method} {request.url.path}."},
                            status_code=404, headers={"x-request-id": new_request_id()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        platform.shutdown()

    app = Starlette(routes=router.routes, exception_handlers={404: not_found, 405: not_found},
                    lifespan=lifespan)
    app.state.platform = platform
    return app
