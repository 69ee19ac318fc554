"""One HTTP session for every AEP service: the four platform headers, timeouts, retries, errors."""

import logging
import time
from typing import Any

import requests

from .auth import TokenProvider
from .config import AEPConfig
from .errors import AEPError, error_class, parse_error_body
from .retry import retry_delay, should_retry

log = logging.getLogger("aep_assets.aep")


class AEPSession:
    def __init__(self, config: AEPConfig, http: requests.Session | None = None) -> None:
        self.config = config
        self.http = http or requests.Session()
        self.tokens = TokenProvider(config.ims_url, config.client_id, config.client_secret, config.scopes,
                                    timeout_s=config.timeout_s, http=self.http, max_retries=config.max_retries)
        self.retries_made = 0
        self.unauthorized_refreshes = 0

    def __repr__(self) -> str:
        return f"AEPSession(platform_url={self.config.platform_url!r}, sandbox={self.config.sandbox_name!r})"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.config.platform_url.rstrip("/") + path

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token()}", "x-api-key": self.config.client_id,
                "x-gw-ims-org-id": self.config.org_id, "x-sandbox-name": self.config.sandbox_name,
                "Accept": "application/json", **(extra or {})}

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None, data: bytes | None = None,
                headers: dict[str, str] | None = None, timeout_s: float | None = None) -> requests.Response:
        """Send one call. 429/5xx and dropped connections are retried; a 401 refreshes the token once."""
        url = self.url(path)
        refreshed = False
        attempt = 0
        while True:
            try:
                resp = self.http.request(method, url, params=params, json=json, data=data,
                                         headers=self.headers(headers), timeout=timeout_s or self.config.timeout_s)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if not should_retry(None, attempt, self.config.max_retries):
                    raise AEPError(f"{method} {url} failed after {attempt + 1} attempts: "
                                   f"{exc.__class__.__name__}. Check that AEP is reachable.") from None
                self._pause(method, url, None, attempt, None)
                attempt += 1
                continue
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                self.unauthorized_refreshes += 1
                self.tokens.invalidate()
                log.info("%s %s: 401, refreshing the IMS token once", method, url)
                continue
            if resp.status_code < 400:
                return resp
            if should_retry(resp.status_code, attempt, self.config.max_retries):
                self._pause(method, url, resp.status_code, attempt, resp.headers.get("Retry-After"))
                attempt += 1
                continue
            raise self._error(method, url, resp)

    def _pause(self, method: str, url: str, status: int | None, attempt: int, retry_after: str | None) -> None:
        delay = retry_delay(attempt, retry_after)
        self.retries_made += 1
        log.warning("%s %s: %s, retry %d in %.2fs", method, url, status or "connection failed", attempt + 1, delay)
        time.sleep(delay)

    @staticmethod
    def _error(method: str, url: str, resp: requests.Response) -> AEPError:
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        code, title, detail = parse_error_body(body)
        return error_class(resp.status_code)(resp.status_code, method, url, code, title, detail,
                                             resp.headers.get("x-request-id"), body)

    def json(self, method: str, path: str, **kwargs) -> Any:
        resp = self.request(method, path, **kwargs)
        return resp.json() if resp.content else None
