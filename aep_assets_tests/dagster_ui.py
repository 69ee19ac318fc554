"""Start the Dagster UI as ``./run dev`` does, as a job a script starts in the background: SIGINT ignored on entry
(a shell without job control does that), in a session of its own so that a test can stop everything it started."""

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_in_background(env: dict, port: int, log: Path) -> subprocess.Popen:
    # The shell's `trap '' INT` hands an ignored SIGINT on through exec, as a supervisor or a `cmd &` line would.
    dev = [sys.executable, "-m", "aep_assets.dev_server", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    command = f"trap '' INT; exec {shlex.join(dev)}"
    with open(log, "wb") as out:
        return subprocess.Popen(["sh", "-c", command], env=env, cwd=ROOT, stdout=out, stderr=out,
                                start_new_session=True)
