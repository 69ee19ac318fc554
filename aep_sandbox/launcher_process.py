"""The launcher process (``python -m aep_sandbox.launcher_process``; launcher.py is its owner's side).

It imports what a sandbox imports, then forks a sandbox per request read on its stdin, reports each start and
each exit on its stdout, signals its sandboxes on request, and stops them when its owner goes.
"""

import ctypes
import json
import os
import selectors
import signal
import sys
import warnings

# The only threads here are the allocator's and the linear algebra library's (pyarrow's jemalloc, numpy's
# OpenBLAS): both prepare for fork themselves (pthread_atfork), which is why multiprocessing's fork start method
# works with them loaded. Python's warning about forking a multi-threaded process is about other threads.
warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded", category=DeprecationWarning)


def _preload() -> None:
    """Import what a sandbox imports before it listens, starting nothing of its own: no thread, no connection,
    no file."""
    import aep_sandbox.cli  # noqa: F401 - the server, its engine and its libraries


def _preload_later() -> None:
    """What a sandbox imports after it listens, imported once the first sandbox runs (so that it starts no later
    than a new interpreter would), for the sandboxes forked after it."""
    try:
        import pandas  # noqa: F401 - pyarrow imports it on a sandbox's first Parquet write
    except ImportError:
        pass


def _reply_channel():
    """The owner's pipe, kept for replies alone: anything else printed (by an import, say) goes to stderr."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return replies


def _reply(replies, message: dict) -> bool:
    """Send ``message``; False when the owner has gone."""
    try:
        replies.write(json.dumps(message) + "\n")
        return True
    except BrokenPipeError:
        return False


def _serve_requests(replies) -> dict | None:
    """The launcher's loop. Returns only in a forked child, with the request it is to run; None when the owner
    has gone and the launcher ends, having stopped the sandboxes the owner left running (SIGTERM)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wake-up pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the owner and its sandboxes, not the launcher
    running: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    pending, preloaded = b"", False
    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                os.read(wake_r, 4096)
                if _report_exits(running, replies):
                    continue
                chunk = b""  # the owner has gone
            else:
                chunk = os.read(0, 65536)
            if not chunk:
                return _stop_all(running)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                request = json.loads(line)
                if "signal" in request:
                    if request["signal"] in running:  # not yet reaped, so the pid is still that sandbox's
                        os.kill(request["signal"], request["number"])
                    continue
                launcher = os.getpid()
                pid = os.fork()
                if pid == 0:
                    _become_sandbox(launcher)
                    selector.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    os.close(wake_r)
                    os.close(wake_w)
                    replies.close()
                    return request
                running.add(pid)
                if not _reply(replies, {"started": request["start"], "pid": pid}):
                    return _stop_all(running)
                if not preloaded:
                    _preload_later()
                    preloaded = True


def _become_sandbox(launcher: int) -> None:
    """In a forked sandbox, on Linux: receive SIGTERM when the launcher dies (killed, say), as the launcher would
    have sent it when its owner went; otherwise no one would be left to stop the sandbox. And go by the name
    ``aep-sandbox`` (what ``top``, ``ps -e`` and ``pgrep`` show), since a fork keeps the launcher's command line."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig, pr_set_name = 1, 15
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_name, ctypes.c_char_p(b"aep-sandbox"))
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != launcher:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _stop_all(running: set[int]) -> None:
    """The owner has gone: nobody is left to use its sandboxes, or to stop them."""
    for pid in running:
        os.kill(pid, signal.SIGTERM)


def _report_exits(running: set[int], replies) -> bool:
    """Reap the sandboxes that have exited and report their codes; False when the owner has gone."""
    while running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        running.discard(pid)
        if not _reply(replies, {"exited": pid, "code": os.waitstatus_to_exitcode(status)}):
            return False
    return True


def _run(request: dict) -> None:
    """In the forked child: the environment, input and output a new interpreter would have had, then the server."""
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    from aep_sandbox.cli import main

    main(["serve", *request["args"]])


def main() -> None:
    replies = _reply_channel()
    _preload()
    request = _serve_requests(replies)
    if request is not None:  # in a sandbox: leave the launcher's frames and exit as an interpreter does
        _run(request)


if __name__ == "__main__":
    main()
