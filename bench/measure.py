"""What the benchmarks measure with: the resident memory of a process and everything it started."""

import os
import threading
import time
from pathlib import Path


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


class MemorySampler(threading.Thread):
    """Samples the RSS of this process and its descendants (only the descendants with ``include_self=False``)
    every 50 ms."""

    def __init__(self, include_self: bool = True) -> None:
        super().__init__(daemon=True)
        self.include_self = include_self
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            pids, frontier = [me], [me]
            while frontier:
                frontier = [c for p in frontier for c in children(p)]
                pids += frontier
            self.samples.append((time.time(), sum(rss_mb(p) for p in pids[0 if self.include_self else 1:])))
            time.sleep(0.05)

    def peak(self, start: float, end: float) -> float:
        return max((m for t, m in self.samples if start <= t <= end), default=0.0)
