"""aep_sandbox: a local Adobe Experience Platform that speaks AEP's HTTP API and Query Service's PostgreSQL
wire protocol over one data directory.

Its public API is the process: ``aep-sandbox serve`` (cli.py), or ``SandboxProcess`` to start one from Python.
Everything else is reached over HTTP and PostgreSQL, as AEP is; nothing here imports the pipeline.
"""

from .process import SandboxProcess

__all__ = ["SandboxProcess"]
