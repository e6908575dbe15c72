"""Starting and stopping the real app server in the end-to-end tests: a free port, waiting until it is healthy,
stopping its process group."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90, log: str | None = None) -> None:
    """Return once `url` answers Streamlit's health check; fail when the process exits or `timeout` passes."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}" + (f": {log}" if log else ""))
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the app did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it leads its own session), SIGKILL after 15 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
