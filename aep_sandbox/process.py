"""Start and stop a sandbox in its own process on a free local port."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from .config import Credentials
from .launcher import Launched, launch
from .ports import free_port


class SandboxProcess:
    """``with SandboxProcess(data_dir) as sb: sb.url`` runs ``aep-sandbox serve`` until the block ends (started by
    this process's launcher: launcher.py)."""

    def __init__(self, data_dir: Path, *, landing_zone_dir: Path | None = None, token_ttl: int | None = None,
                 async_delay: float = 0.0, lifecycles: str = "", dlz: str | None = None,
                 faults: list[dict] | None = None, fault_seed: int | None = None, env: dict | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port, self.pg_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = ["--port", str(self.port), "--pg-port", str(self.pg_port), "--data-dir", str(self.data_dir),
               "--async-delay", str(async_delay)]
        if landing_zone_dir:
            cmd += ["--landing-zone-dir", str(landing_zone_dir)]
        if dlz:
            cmd += ["--dlz", dlz]
        cmd += [f"--lifecycle={item}" for item in lifecycles.split(",") if item]
        if token_ttl is not None:
            cmd += ["--token-ttl", str(token_ttl)]
        if faults:
            cmd += ["--faults", json.dumps(faults)]
        if fault_seed is not None:
            cmd += ["--fault-seed", str(fault_seed)]
        self._args, self._env = cmd, {**os.environ, **(env or {})}
        self._proc: Launched | subprocess.Popen | None = None
        self._log = self.data_dir / f"sandbox-{self.port}.log"

    @property
    def credentials(self) -> Credentials:
        return Credentials.load_or_create(self.data_dir)

    def start(self, timeout: float = 60.0) -> "SandboxProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials  # noqa: B018 - create them before the server reads them
        self._proc = launch(self._args, self._env, self._log)
        try:
            wait_until_listening(self._proc, self.port, self._log, timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ten seconds; the exit code (negative: the signal that ended it), or None
        when it was not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def kill(self) -> None:
        """Stop the process at once, as a crash would (SIGKILL): nothing is cleaned up."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def __enter__(self) -> "SandboxProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until_listening(proc: "Launched | subprocess.Popen", port: int, log: Path, timeout: float) -> None:
    """Until the sandbox ``proc`` accepts connections on ``port`` (it listens once it serves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"The AEP sandbox exited with {proc.returncode}; see {log}.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"The AEP sandbox did not listen on port {port} within {timeout}s; see {log}.")
