"""How a sandbox process starts: forked by its owner's launcher, which imported the libraries once, and otherwise
as a new interpreter would be (launcher.py)."""

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import requests

from aep_sandbox import SandboxProcess
from aep_sandbox.launcher import launch
from aep_sandbox.ports import free_port
from aep_sandbox.process import wait_until_listening

from .conftest import wait_until


def _parent(pid: int) -> int:
    return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("PPid:")).split()[1])


def _serves(sb: SandboxProcess) -> bool:
    return requests.post(f"{sb.url}/ims/token/v3", data={"grant_type": "client_credentials"}, timeout=10).status_code \
        in (400, 401)  # IMS answered (without credentials it refuses)


def _gone(pid: int) -> bool:
    try:
        state = next(line for line in open(f"/proc/{pid}/status") if line.startswith("State:"))
    except FileNotFoundError:
        return True
    return " Z " in state or "zombie" in state


def _serve_args(data, port: int) -> list[str]:
    return ["--port", str(port), "--pg-port", str(free_port()), "--data-dir", str(data), "--dlz", "local"]


def _new_interpreter(args: list[str], log, *, ignoring_sigterm: bool = False) -> subprocess.Popen:
    """``aep-sandbox serve`` as a new interpreter, its output in ``log``; optionally from a parent that ignores
    SIGTERM, as nohup-like supervisors leave it (a shell's ``trap '' TERM`` is inherited through exec)."""
    cmd = [sys.executable, "-m", "aep_sandbox.cli", "serve", *args]
    if ignoring_sigterm:
        cmd = ["sh", "-c", f"trap '' TERM; exec {shlex.join(cmd)}"]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)


def test_the_sandboxes_of_a_process_are_forked_by_its_one_launcher(tmp_path):
    with SandboxProcess(tmp_path / "a", dlz="local") as first, SandboxProcess(tmp_path / "b", dlz="local") as second:
        assert _serves(first) and _serves(second)
        launcher = _parent(first._proc.pid)
        assert _parent(second._proc.pid) == launcher and _parent(launcher) == os.getpid()
        if sys.platform.startswith("linux"):  # named as a sandbox, not after the launcher it was forked from
            assert open(f"/proc/{first._proc.pid}/comm").read().strip() == "aep-sandbox"
        log = (first.data_dir / f"sandbox-{first.port}.log").read_text()
        assert f"AEP sandbox on http://127.0.0.1:{first.port}" in log  # its output goes to its own log


def test_exit_codes_are_the_ones_a_new_interpreter_gives(tmp_path):
    codes, logs = {}, {}
    for how in ("new interpreter", "launcher"):
        for stop in (signal.SIGTERM, signal.SIGKILL):
            data, port = tmp_path / f"{how}-{stop.name}", free_port()
            data.mkdir()
            args, log = _serve_args(data, port), data / "sandbox.log"
            proc = launch(args, dict(os.environ), log) if how == "launcher" else _new_interpreter(args, log)
            wait_until_listening(proc, port, log, timeout=60)
            proc.terminate() if stop == signal.SIGTERM else proc.kill()
            codes[how, stop.name] = proc.wait(30)
            logs[how, stop.name] = log.read_text()[-3000:]
    assert codes["launcher", "SIGTERM"] == codes["new interpreter", "SIGTERM"] == -signal.SIGTERM, logs
    assert codes["launcher", "SIGKILL"] == codes["new interpreter", "SIGKILL"] == -signal.SIGKILL


def test_a_sandbox_whose_parent_ignores_sigterm_still_stops_with_it(tmp_path):
    port, log = free_port(), tmp_path / "sandbox.log"
    proc = _new_interpreter(_serve_args(tmp_path, port), log, ignoring_sigterm=True)
    wait_until_listening(proc, port, log, timeout=60)
    proc.terminate()
    assert proc.wait(30) == -signal.SIGTERM, log.read_text()[-3000:]


def test_a_crashed_sandbox_leaves_its_threads_stacks_in_its_log(tmp_path):
    with SandboxProcess(tmp_path, dlz="local") as sb:
        pid, log = sb._proc.pid, tmp_path / f"sandbox-{sb.port}.log"
        # The sandbox warms its libraries on a thread after it listens. CPython's faulthandler can itself crash while
        # it dumps a thread half-way through an import (SIGSEGV instead of the abort), so the crash comes after.
        wait_until(lambda: "libraries warmed up" in log.read_text(), timeout_s=60, what="the sandbox's warm-up")
        os.kill(pid, signal.SIGABRT)  # as a library's abort() would
        code = sb._proc.wait(30)
    text = log.read_text()
    assert code == -signal.SIGABRT, text[-3000:]
    assert "Fatal Python error: Aborted" in text and "Current thread" in text, text[-3000:]


def test_a_script_without_a_main_guard_starts_sandboxes(tmp_path):
    # multiprocessing's own fork server would run such a script again in every child
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from aep_sandbox import SandboxProcess
        for name in ("one", "two"):
            with SandboxProcess(Path({str(tmp_path)!r}) / name, dlz="local") as sb:
                print("served", sb.port)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [line.split()[0] for line in run.stdout.splitlines()] == ["served", "served"]


def test_a_sandbox_its_owner_left_running_stops_when_the_owner_exits(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from aep_sandbox import SandboxProcess
        sb = SandboxProcess(Path({str(tmp_path)!r}) / "left", dlz="local").start()
        print(sb._proc.pid)
    """))  # exits without stopping it
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    pid = int(run.stdout.split()[-1])
    deadline = time.monotonic() + 30  # its graceful shutdown, at most uvicorn's
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_a_sandbox_stops_with_a_killed_launcher_and_its_owner_carries_on(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from aep_sandbox import SandboxProcess

        def parent(pid):
            return int(next(l for l in open(f"/proc/{{pid}}/status") if l.startswith("PPid:")).split()[1])

        sb = SandboxProcess(Path({str(tmp_path)!r}) / "orphaned", dlz="local").start()
        launcher = parent(sb._proc.pid)
        os.kill(launcher, signal.SIGKILL)
        print("ended", sb._proc.pid, sb._proc.wait(30))  # without the launcher to report it
        print("stopped", sb.stop())
        with SandboxProcess(Path({str(tmp_path)!r}) / "next", dlz="local") as later:
            print("new launcher", parent(later._proc.pid) != launcher)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    ended, stopped, new = (line.split() for line in run.stdout.splitlines())
    assert ended[2] == str(-signal.SIGTERM) and _gone(int(ended[1]))
    assert stopped == ["stopped", str(-signal.SIGTERM)]
    assert new == ["new", "launcher", "True"]
