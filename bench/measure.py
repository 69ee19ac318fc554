"""What the benchmarks measure with: the resident memory of a process and everything it started.

The sampling runs in a process of its own: a sampling thread in the measured process would take the GIL from
the work it measures (reading /proc for every thread of every process, 20 times a second) and slow it.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INTERVAL_S = 0.05


def work_dir(prefix: str) -> Path:
    """A new directory under the system's temporary directory for one benchmark's sandbox, storage and files,
    removed when the script exits: a million-profile run leaves gigabytes. ``AEP_BENCH_KEEP=1`` keeps it, to look
    at what the run wrote; the script then says on stderr where it is."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("AEP_BENCH_KEEP") == "1":
        print(f"work_dir={path} (kept: AEP_BENCH_KEEP=1)", file=sys.stderr, flush=True)
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


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


def tree_rss_mb(root: int, include_root: bool) -> float:
    pids, frontier = [root], [root]
    while frontier:
        frontier = [c for p in frontier for c in children(p)]
        pids += frontier
    return sum(rss_mb(p) for p in pids[0 if include_root else 1:])


class MemorySampler:
    """Samples the RSS of this process and its descendants (only the descendants with ``include_self=False``)
    every 50 ms, from a separate process, between ``start()`` and ``finish()``."""

    def __init__(self, include_self: bool = True) -> None:
        self.include_self = include_self
        self.samples: list[tuple[float, float]] = []
        self._watcher: subprocess.Popen | None = None
        self._log = None  # the watcher's samples, one "time rss" line each

    def start(self) -> None:
        self._log = tempfile.NamedTemporaryFile("w+", prefix="aep-bench-rss-", suffix=".txt")
        self._watcher = subprocess.Popen(
            [sys.executable, __file__, str(os.getpid()), "1" if self.include_self else "0"],
            stdin=subprocess.PIPE, stdout=self._log, text=True)

    def finish(self) -> None:
        self._watcher.communicate("")  # closing its stdin stops it
        with self._log:
            self._log.seek(0)
            self.samples = [(float(t), float(m)) for t, m in (line.split() for line in self._log)]

    def peak(self, start: float, end: float) -> float:
        return max((m for t, m in self.samples if start <= t <= end), default=0.0)


def _watch(pid: int, include_root: bool) -> None:
    import select

    while not select.select([sys.stdin], [], [], INTERVAL_S)[0]:  # until the sampler closes our stdin
        # The watcher itself is one of the root's children: leave it out.
        print(f"{time.time():.3f} {tree_rss_mb(pid, include_root) - rss_mb(os.getpid()):.1f}")


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.argv[2] == "1")
