"""``dagster dev`` as ``./run dev`` starts it: with SIGINT's default action restored first, so that SIGTERM stops it.

    python -m aep_assets.dev_server -w workspace.yaml -h 127.0.0.1 -p 3000

``dagster dev``, its webserver and its daemon stop on SIGTERM through SIGINT's handler: each sets SIGTERM's action
to SIGINT's when it starts. A job that a script starts in the background inherits an ignored SIGINT (a shell without
job control ignores it there), so SIGTERM was then ignored too, and ``kill`` could not stop the UI. A shell cannot
reset a signal ignored on entry; this process can, and ``exec`` keeps the default action it sets.
"""

import os
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    beside = Path(sys.executable).with_name("dagster")  # this environment's, whatever PATH says
    if beside.exists():
        os.execv(beside, [str(beside), "dev", *args])
    os.execvp("dagster", ["dagster", "dev", *args])


if __name__ == "__main__":
    main()
