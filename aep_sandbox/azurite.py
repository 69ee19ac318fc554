"""Azurite, Microsoft's Azure Storage emulator, as the sandbox's Azure Blob Storage (the DLZ's, see dlz.py).

The sandbox starts ``azurite-blob`` the first time the landing zone is used, on a port of 127.0.0.1 kept
for the data dir, with its blobs under ``DATA_DIR/azurite``, and stops it with the sandbox. The storage
account's name and key are made once per data dir (AEP's are named like ``dlblobstore99hh25i3dflek``);
clients never see the key.
"""

import base64
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import names
from .destinations import Destination
from .ports import free_port

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger("aep_sandbox")


def azurite_binary() -> str | None:
    """``AEP_SANDBOX_AZURITE`` (a path, or ``off``), else ``azurite-blob`` on PATH or in ./node_modules/.bin."""
    chosen = os.environ.get("AEP_SANDBOX_AZURITE")
    if chosen:
        return None if chosen.lower() in ("off", "0", "false", "no") else chosen
    local = Path.cwd() / "node_modules" / ".bin" / "azurite-blob"
    return shutil.which("azurite-blob") or (str(local) if local.exists() else None)


@dataclass(frozen=True)
class StorageAccount:
    name: str
    key: str = field(repr=False)

    @classmethod
    def load_or_create(cls, folder: Path) -> "StorageAccount":
        path = folder / "account.json"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            account = {"name": "dlblobstore" + secrets.token_hex(7), "key": base64.b64encode(os.urandom(64)).decode()}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the account key
            with os.fdopen(fd, "w") as f:
                json.dump(account, f)
        return cls(**json.loads(path.read_text()))


class Azurite:
    """The ``azurite-blob`` process of one data dir, started on first use.

    Several sandbox processes may serve one data dir (as the pipeline's resources do), so they share one
    Azurite: its pid and port are recorded in the data dir, each process that uses it holds a shared lock on
    ``in-use.lock``, and the last one to stop (the one that gets the lock alone) stops it.
    """

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        self.account = StorageAccount.load_or_create(folder)
        self._lock = threading.Lock()
        self._in_use = None  # the open in-use.lock, once this process has used Azurite
        self.url = ""

    def service(self) -> "BlobServiceClient":
        # Imported here: the SDK is a fifth of a second, and every sandbox reads azurite_binary() as it starts.
        from azure.storage.blob import BlobServiceClient

        with self._lock:
            if not self.url or not _listening(self._record().get("port", 0)):
                self._attach()
        return BlobServiceClient(self.url, credential={"account_name": self.account.name,
                                                       "account_key": self.account.key})

    def _record(self) -> dict:
        path = self.folder / "azurite.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _attach(self) -> None:
        if self._in_use is None:
            self._in_use = open(self.folder / "in-use.lock", "a")
            fcntl.flock(self._in_use, fcntl.LOCK_SH)
        with open(self.folder / "start.lock", "a") as start_lock:
            fcntl.flock(start_lock, fcntl.LOCK_EX)  # one process starts it; the others wait, then reuse it
            port = self._record().get("port", 0)
            if not _listening(port):
                port = self._start(port if port and _free(port) else free_port())
        self.url = f"http://127.0.0.1:{port}/{self.account.name}"

    def _start(self, port: int, timeout_s: float = 30.0) -> int:
        env = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account.name}:{self.account.key}"}
        # Its own session: it outlives the process that started it while other sandboxes still use it.
        with open(self.folder / "azurite.log", "ab") as log_file:
            proc = subprocess.Popen(
                [self.binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                 str(self.folder / "blobs"), "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"],
                stdout=log_file, stderr=log_file, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not _listening(port):
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {proc.returncode}; see {self.folder / 'azurite.log'}.")
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"Azurite did not listen on port {port} within {timeout_s}s.")
            time.sleep(0.05)
        (self.folder / "azurite.json").write_text(json.dumps({"pid": proc.pid, "port": port}))
        log.info("Data Landing Zone on Azurite at http://127.0.0.1:%s/%s", port, self.account.name)
        return port

    def stop(self) -> None:
        """Let go of Azurite; stop it if no other process uses it."""
        if self._in_use is None:
            return
        fcntl.flock(self._in_use, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._in_use, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another sandbox still uses it; the last one stops it
        finally:
            self._in_use.close()
            self._in_use = None
        pid = self._record().get("pid")
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            (self.folder / "azurite.json").unlink(missing_ok=True)


class AzureContainer(Destination):
    def __init__(self, container) -> None:
        self.container = container

    def write(self, key: str, data: bytes) -> str:
        key = names.relative_path(key, "Export path")
        self.container.upload_blob(key, data, overwrite=True)
        return f"{self.container.url}/{key}"


def _listening(port: int) -> bool:
    if not port:
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
