"""``./run dev``: the Dagster UI stops on SIGTERM (``kill PID``), with every process it started, also when a script
started it in the background. ``dagster dev`` alone ignored SIGTERM then (aep_assets/dev_server.py says why)."""

import os
import signal
import subprocess
from pathlib import Path

from .conftest import _free_port, wait_for_http, wait_until
from .dagster_ui import start_in_background


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (zombies, which only wait to be reaped, left out)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
        except OSError:
            continue  # ended while listed
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def test_the_ui_started_in_the_background_stops_on_sigterm_with_its_processes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "AEP_SANDBOX_DIR": str(tmp_path / "aep"),
           "AEP_STORAGE_DIR": str(tmp_path / "storage")}
    port, log = _free_port(), tmp_path / "dagster-dev.log"
    proc = start_in_background(env, port, log)
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/server_info"), log.read_text()[-3000:]
        assert len(_session(proc.pid)) > 1, "dagster dev started no webserver or daemon"
        os.kill(proc.pid, signal.SIGTERM)  # as `kill PID` does: to dagster dev alone, not its processes
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("dagster dev ignored SIGTERM for 60 s:\n" + log.read_text()[-3000:]) from None
        assert code == 0, log.read_text()[-3000:]
        wait_until(lambda: not _session(proc.pid), timeout_s=60, what="dagster dev's processes to stop")
    finally:
        if _session(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
