"""Injected faults: which failure (if any) a request or a batch meets, as configured (config.py: Fault)."""

import logging
import random
import re
import threading

from starlette.requests import Request

from .config import SandboxConfig

log = logging.getLogger("aep_sandbox")


class FaultInjector:
    """Picks the fault (if any) a request or batch meets. Faults with a ``rate`` are drawn from a generator
    seeded with ``fault_seed`` (one is chosen and logged when none is given), so a failing run can be
    replayed with the same faults in the same order of requests."""

    def __init__(self, config: SandboxConfig) -> None:
        self.faults = config.faults
        self.used = [0] * len(self.faults)
        self.lock = threading.Lock()
        self.seed = config.fault_seed
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        self.random = random.Random(self.seed)
        if any(f.rate is not None for f in self.faults):
            log.info("injected faults are drawn with seed %d; replay them with --fault-seed %d", self.seed,
                     self.seed)

    def pick(self, request: Request):
        return self._pick("http", request.method, request.url.path)

    def pick_batch(self, batch_id: str):
        return self._pick("batch", "", batch_id)

    def _pick(self, target: str, method: str, path: str):
        for i, fault in enumerate(self.faults):
            if fault.target != target:
                continue
            if fault.method and fault.method.upper() != method:
                continue
            if fault.path and not re.search(fault.path, path):
                continue
            if fault.times is not None:
                with self.lock:
                    if self.used[i] >= fault.times:
                        continue
                    self.used[i] += 1
                return fault
            if fault.rate is None:
                return fault
            with self.lock:
                if self.random.random() < fault.rate:
                    return fault
        return None
