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
runs (SIGTERM) and ends. If the launcher itself dies (killed, say), its sandboxes receive SIGTERM (Linux), and
the owner follows each one by a pidfd it opened when the sandbox started: it still learns when the sandbox has
exited, and can signal it, without any risk of reaching a reused pid. Where there is no ``fork`` (Windows), a
sandbox starts as a new interpreter.

The protocol is JSON lines: requests on the launcher's stdin, replies and exits on its stdout.
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
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
        self._pidfds: dict[int, int] = {}  # pid -> pidfd, for a sandbox that outlives its launcher
        self._replies_ended = False  # the launcher has gone: no more starts or exits will be reported
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
            if not self._changed.wait_for(lambda: number in self._started or self._replies_ended, timeout):
                raise TimeoutError(f"The sandbox launcher did not start a sandbox within {timeout}s.")
            if number not in self._started:
                raise RuntimeError(f"The sandbox launcher exited with {self._proc.poll()}.")
            return Launched(self, self._started.pop(number))

    def exit_code(self, pid: int) -> int | None:
        return self.wait_for_exit(pid, 0)

    def wait_for_exit(self, pid: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._replies_ended, timeout)
            if pid in self._exits or not self._replies_ended or pid not in self._pidfds:
                return self._exits.get(pid)
            pidfd = self._pidfds[pid]
        # The launcher has gone and cannot report this exit: the pidfd tells when the sandbox has ended.
        try:
            ended = bool(select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))[0])
        except (OSError, ValueError):  # another thread recorded the exit and closed the pidfd
            ended = False
        if ended:
            with self._changed:
                self._record_exit(pid, -signal.SIGTERM)  # its code went with the launcher; it was sent SIGTERM
        with self._changed:
            return self._exits.get(pid)

    def signal(self, pid: int, number: int) -> None:
        try:
            with self._write:
                self._send({"signal": pid, "number": int(number)})
            return
        except RuntimeError:
            with self._changed:
                pidfd = self._pidfds.get(pid)
                if pidfd is None and pid not in self._exits:
                    raise
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, number)
            except ProcessLookupError:
                pass  # it has ended

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
                    self._follow(reply["pid"])
                else:
                    self._record_exit(reply["exited"], reply["code"])
                self._changed.notify_all()
        with self._changed:
            self._replies_ended = True
            self._changed.notify_all()

    def _follow(self, pid: int) -> None:
        """A pidfd of the sandbox ``pid``, opened as its start is read. Linux hands out pids in turn and reuses
        one only after handing out all the others, so the pid is still the sandbox's; if it has already ended,
        there is none to open."""
        try:
            self._pidfds[pid] = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfds here (not Linux), or it has already ended
            pass

    def _record_exit(self, pid: int, code: int) -> None:
        self._exits.setdefault(pid, code)
        pidfd = self._pidfds.pop(pid, None)
        if pidfd is not None:
            os.close(pidfd)
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
