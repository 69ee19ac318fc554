"""Which process runs a piece of work: several sandbox processes may share one data directory.

Work in flight records its ``worker`` (a pid and that process's start time), so that a sandbox starting
after a crash can tell the work of a dead process (recovery.py) from that of a live one.
"""

import os
import secrets
from pathlib import Path

STAGING = ".staging"  # under a sandbox's datasets folder: CTAS rows written before their dataset exists


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_worker() -> str:
    pid = os.getpid()
    return f"{pid}:{_start_time(pid) or '0'}"


def alive(worker: str | None) -> bool:
    if not worker:
        return False
    pid, _, started = worker.partition(":")
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return _start_time(int(pid)) in (started, None)


def staging_dir(datasets_dir: Path) -> Path:
    """A fresh folder of this process's for rows written before their dataset exists."""
    folder = datasets_dir / STAGING / f"{this_worker().replace(':', '_')}-{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    return folder
