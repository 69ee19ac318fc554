"""AEP's asynchronous lifecycles, paced from configuration the way moto's ``ManagedState`` paces AWS's.

Every kind of asynchronous object moves through declared states: a batch ``staging`` → ``processing`` →
``success``/``failed``, a query ``SUBMITTED`` → ``IN_PROGRESS`` → ``SUCCESS``, a segment or export job ``NEW``
→ ``PROCESSING`` → ``SUCCEEDED``, a flow run ``inProgress`` → ``success``. The first state holds until the
object's pace lets it move on; then the work runs and sets the rest:

- ``immediate`` (the default): at once, in the background.
- ``manual:N``: after the client has read the object N times (``GET``, or a listing that shows it), so a
  test sees exactly N reads of the waiting state and then the work, with no timer to race. A large N holds
  the object in flight for as long as a test needs (a crash in the middle of a batch, a cancel).
- ``delay:S``: after S seconds, for a demo of a slow platform.

Paces are set per kind (``--lifecycle batch=manual:2``, ``AEP_SANDBOX_LIFECYCLES``); ``--async-delay S``
sets ``delay:S`` for all. A manual pace counts the reads one sandbox process serves.

A read that asks to wait (RFC 7240's ``Prefer: wait=N``) for an object whose work is running is answered
when that work ends, or after N seconds: the client learns at once, without polling faster. A read of a held
object is answered at once, so manual paces still count every read.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("batch", "query", "segment_job", "export_job", "flow_run")


@dataclass(frozen=True)
class Pace:
    model: str = "immediate"  # immediate, manual or delay
    reads: int = 1
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "Pace":
        model, _, arg = text.strip().partition(":")
        try:
            if model == "immediate" and not arg:
                return cls()
            if model == "manual":
                pace = cls("manual", reads=int(arg or 1))
                if pace.reads >= 1:
                    return pace
            if model == "delay":
                pace = cls("delay", seconds=float(arg))
                if pace.seconds >= 0:
                    return pace
        except ValueError:
            pass
        raise ValueError(f"Lifecycle pace {text!r} is not 'immediate', 'manual:N' (N >= 1 reads) or 'delay:S' "
                         "(seconds).")


def parse_paces(text: str | None) -> dict[str, Pace]:
    """``batch=manual:2,query=delay:1`` → {kind: Pace}."""
    paces = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        kind, _, pace = item.partition("=")
        if kind not in KINDS:
            raise ValueError(f"Lifecycle {kind!r} is not one of {', '.join(KINDS)}.")
        paces[kind] = Pace.parse(pace)
    return paces


class Lifecycles:
    """Holds each object in its first state until its pace releases its work to ``run(work, lane)``."""

    def __init__(self, paces: dict[str, Pace], run: Callable[[Callable[[], None], str], None]) -> None:
        self.paces, self.run = paces, run
        self._held: dict[tuple[str, str], list] = {}  # (kind, id) -> [reads left, work, lane]
        self._running: dict[tuple[str, str], threading.Event] = {}  # released work, set when it ends
        self._lock = threading.Lock()
        self._stopping = False

    def begin(self, kind: str, obj_id: str, work: Callable[[], None], lane: str = "jobs") -> None:
        pace = self.paces.get(kind, Pace())
        if pace.model == "manual":
            with self._lock:
                self._held[(kind, obj_id)] = [pace.reads, work, lane]
        elif pace.model == "delay" and pace.seconds:
            self._release(kind, obj_id, lambda: (time.sleep(pace.seconds), work()), lane)
        else:
            self._release(kind, obj_id, work, lane)

    def _release(self, kind: str, obj_id: str, work: Callable[[], None], lane: str) -> None:
        ended = threading.Event()
        with self._lock:
            self._running[(kind, obj_id)] = ended

        def tracked() -> None:
            try:
                work()
            finally:
                with self._lock:
                    if self._running.get((kind, obj_id)) is ended:
                        del self._running[(kind, obj_id)]
                ended.set()

        self.run(tracked, lane)

    def settle(self, kind: str, obj_id: str, wait_s: float) -> bool:
        """Waits up to ``wait_s`` for the object's released work to end; False when there is none to wait for
        (done, held by its pace, or run by another sandbox process)."""
        with self._lock:
            ended = None if self._stopping else self._running.get((kind, obj_id))
        if ended is None or wait_s <= 0:
            return False
        ended.wait(wait_s)
        return True

    def stop_holding(self) -> None:
        """The sandbox is stopping: every held read answers now, and none is held again, so the server's
        graceful shutdown does not wait out the reads' ``Prefer: wait``."""
        with self._lock:
            self._stopping = True
            waiting = list(self._running.values())
        for ended in waiting:
            ended.set()

    def observed(self, kind: str, obj_id: str) -> None:
        """A client has read the object (after the response was built, so the read itself saw it waiting)."""
        with self._lock:
            entry = self._held.get((kind, obj_id))
            if entry is None:
                return
            entry[0] -= 1
            if entry[0] > 0:
                return
            del self._held[(kind, obj_id)]
        self._release(kind, obj_id, entry[1], entry[2])
