"""Start sandboxes without paying their imports each time: ``launch(args, env, log)``.

Most of a sandbox's start is importing its libraries (DuckDB, pyarrow and the pandas it brings, sqlglot, the
web server): about a second of a core. A process that starts many sandboxes (a notebook or a test session
materialising run after run, each run with its own sandbox) would pay it every time. So each such process
keeps one launcher: a process of its own (``launcher_process.py``) that imports the libraries once,
starts no thread of its own, and forks a sandbox per request. The fork runs ``aep-sandbox serve`` as a new interpreter
would: the same arguments, exactly the environment asked for, its output in the log, and the interpreter's
normal exit (threads joined, exit handlers run).

The launcher is the sandboxes' parent: it reaps them and reports each exit code (negative: the signal that
ended it, as ``subprocess.Popen`` says), and it signals them on request, so a signal never reaches a process
that has exited and whose pid the OS gave to another. When its owner exits, it stops the sandboxes it still
runs (SIGTERM) and ends. Where there is no ``fork`` (Windows), a sandbox starts as a new interpreter.

The protocol is JSON lines: requests on the launcher's stdin, replies and exits on its stdout.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


class Launched:
    """A sandbox the launcher forked, answering as ``subprocess.Popen`` would."""

    def __init__(self, launcher: "Launcher", pid: int) -> None:
        self._launcher, self.pid = launcher, pid

    @property
    def returncode(self) -> int | None:
        return self._launcher.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float) -> int:
        code = self._launcher.wait_for_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired("aep-sandbox serve", timeout)
        return code

    def terminate(self) -> None:
        self._launcher.signal(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        self._launcher.signal(self.pid, signal.SIGKILL)


class Launcher:
    """The owner's side of one launcher process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "aep_sandbox.launcher_process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        self._changed = threading.Condition()
        self._started: dict[int, int] = {}  # request number -> pid
        self._exits: dict[int, int] = {}  # pid -> exit code
        self._requests = 0
        self._write = threading.Lock()
        threading.Thread(target=self._read_replies, name="aep-sandbox-launcher", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def start(self, args: list[str], env: dict[str, str], log: Path, timeout: float = 60.0) -> Launched:
        with self._write:
            self._requests += 1
            number = self._requests
            self._send({"start": number, "args": args, "env": env, "log": str(log)})
        with self._changed:
            if not self._changed.wait_for(lambda: number in self._started or not self.alive, timeout):
                raise TimeoutError(f"The sandbox launcher did not start a sandbox within {timeout}s.")
            if number not in self._started:
                raise RuntimeError(f"The sandbox launcher exited with {self._proc.returncode}.")
            return Launched(self, self._started.pop(number))

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            return self._exits.get(pid)

    def wait_for_exit(self, pid: int, timeout: float) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits, timeout)
            return self._exits.get(pid)

    def signal(self, pid: int, number: int) -> None:
        with self._write:
            self._send({"signal": pid, "number": int(number)})

    def _send(self, request: dict) -> None:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise RuntimeError(f"The sandbox launcher exited with {self._proc.poll()}.") from e

    def _read_replies(self) -> None:
        for line in self._proc.stdout:
            reply = json.loads(line)
            with self._changed:
                if "started" in reply:
                    self._started[reply["started"]] = reply["pid"]
                else:
                    self._exits[reply["exited"]] = reply["code"]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def _forget_launcher() -> None:  # a forked copy of the owner does not share its launcher's pipes
    global _launcher
    _launcher = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_launcher)


def launch(args: list[str], env: dict[str, str], log: Path) -> "Launched | subprocess.Popen":
    """``aep-sandbox serve`` with ``args`` (after ``serve``) and exactly ``env``, its output appended to ``log``."""
    global _launcher
    if not hasattr(os, "fork"):
        with open(log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "aep_sandbox.cli", "serve", *args], stdout=out,
                                    stderr=out, env=env)
    with _launcher_lock:
        if _launcher is None or not _launcher.alive:
            _launcher = Launcher()
        launcher = _launcher
    return launcher.start(args, env, log)
