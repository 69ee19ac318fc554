"""Adobe IMS OAuth server-to-server tokens (``POST /ims/token/v3``); reference/aep_api.md §1.2."""

import secrets
import time
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

from .http import Call, Router


def register(router: Router) -> None:
    platform = router.platform

    def token(call: Call):
        # The secret only in the form body: a query string ends up in access logs and proxies.
        form = {k: v[0] for k, v in parse_qs(call.body.decode("utf-8", "replace") or "").items()}
        if "client_secret" in call.params:
            return JSONResponse({"error": "invalid_request", "error_description": "send client_secret in the "
                                 "x-www-form-urlencoded body, not in the query string"}, status_code=400)
        form.update({k: v for k, v in call.params.items() if k not in form})
        creds = platform.credentials
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "grant_type must be client_credentials"}, status_code=400)
        if form.get("client_id") != creds.client_id or form.get("client_secret") != creds.client_secret:
            return JSONResponse({"error": "invalid_client", "error_description": "invalid client_id parameter"},
                                status_code=401)
        access = "eyJ" + secrets.token_urlsafe(48)
        ttl = platform.config.token_ttl_s
        platform.store.add_token(access, creds.client_id, time.time() + ttl)
        return 200, {"access_token": access, "token_type": "bearer", "expires_in": ttl}

    router.add("/ims/token/v3", ["POST"], token, public=True)
