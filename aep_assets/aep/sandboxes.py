"""Sandbox Management: the type (production or development) of the sandbox a client writes to."""

from .session import AEPSession

BASE = "/data/foundation/sandbox-management"


class Sandboxes:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def get(self, name: str) -> dict:
        return self.session.json("GET", f"{BASE}/sandboxes/{name}")
