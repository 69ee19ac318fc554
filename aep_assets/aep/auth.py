"""Adobe IMS OAuth server-to-server tokens, cached and refreshed before they expire."""

import threading
from time import monotonic, sleep

import requests

from .errors import AEPError, error_class, parse_error_body
from .retry import retry_delay, should_retry

REFRESH_MARGIN_S = 300  # refresh five minutes early; aepp uses 500 s


class TokenProvider:
    def __init__(self, ims_url: str, client_id: str, client_secret: str, scopes: str, timeout_s: float = 30.0,
                 http: requests.Session | None = None, max_retries: int = 6) -> None:
        self._url = ims_url.rstrip("/") + "/ims/token/v3"
        self._client_id, self._secret, self._scopes = client_id, client_secret, scopes
        self._timeout, self._max_retries = timeout_s, max_retries
        self._http = http or requests.Session()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the secret or the token
        return f"TokenProvider(url={self._url!r}, client_id={self._client_id!r})"

    def token(self) -> str:
        with self._lock:
            if self._token is None or monotonic() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._secret,
                "scope": self._scopes}
        attempt = 0
        while True:  # IMS throttles and fails like any service: retry as the session does
            try:
                resp = self._http.post(self._url, data=form, timeout=self._timeout)
            except requests.RequestException as exc:
                if not should_retry(None, attempt, self._max_retries):
                    raise AEPError(f"Could not reach Adobe IMS at {self._url}: {exc.__class__.__name__}. "
                                   "Check AEP_IMS_URL and the network.") from None
                sleep(retry_delay(attempt))
                attempt += 1
                continue
            if resp.status_code == 200 or not should_retry(resp.status_code, attempt, self._max_retries):
                break
            sleep(retry_delay(attempt, resp.headers.get("Retry-After")))
            attempt += 1
        if resp.status_code != 200:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
            code, title, detail = parse_error_body(body)
            raise error_class(resp.status_code)(resp.status_code, "POST", self._url, code,
                                                title or "IMS token request refused", detail,
                                                resp.headers.get("x-request-id"))
        data = resp.json()
        # v3 reports seconds; a value this large can only be the old JWT exchange's milliseconds.
        expires_in = float(data["expires_in"])
        if expires_in > 10 * 86400:
            expires_in /= 1000
        self._token = data["access_token"]
        self._refresh_at = monotonic() + expires_in - min(REFRESH_MARGIN_S, expires_in / 10)
