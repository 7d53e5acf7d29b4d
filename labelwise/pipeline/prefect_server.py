"""A local Prefect server that commands share, instead of a fresh ephemeral one per command.

Without ``PREFECT_API_URL``, every ``labelwise`` command starts Prefect's ephemeral API (a
server subprocess: ~7 s) and stops it at exit. ``labelwise server start`` starts one real
``prefect server`` for the state directory instead, in the background, on a free local port;
every later command of that state directory finds it (``prefect-server.json``: pid and URL,
checked alive and healthy) and talks to it: no start-up cost, and its UI shows every run.
``labelwise server status`` shows it, ``labelwise server stop`` stops it. A server that died
is noticed (its pid or health check fails) and the commands fall back to the ephemeral API.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from labelwise.engine.errors import LabelwiseError
from labelwise.pipeline.environment import (
    pid_alive,
    process_started,
    start_detached,
    state_dir,
)

FILE = "prefect-server.json"


class ServerError(LabelwiseError):
    """The local Prefect server could not be started or stopped."""


def server_file() -> Path:
    return state_dir() / FILE


def recorded() -> dict[str, Any] | None:
    """The state directory's server record as written (alive or not), or None."""
    try:
        info = json.loads(server_file().read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def running() -> dict[str, Any] | None:
    """The state directory's local server, when its process lives and its API answers."""
    info = recorded()
    if info is None:
        return None
    try:
        alive = ours(info)
    except (ValueError, KeyError, TypeError):
        return None
    return info if alive and healthy(info["url"]) else None


def ours(info: dict[str, Any]) -> bool:
    """Whether the process the state file names still is the server it started: alive, and
    started when it was (a pid the OS gave to another process since is not ours)."""
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False
    if "started" not in info:  # written by an older labelwise: the command line must match
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"server" in cmd and str(info["url"]).split(":")[-1].split("/")[0].encode() in cmd
    return process_started(pid) == info["started"]


def healthy(url: str, timeout: float = 2.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def use_running_server() -> str | None:
    """Point this process's Prefect client at the local server when one runs (and no
    ``PREFECT_API_URL`` was given); its URL, or None (ephemeral API as before)."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    info = running()
    if info is None:
        return None
    os.environ["PREFECT_API_URL"] = info["url"]
    return str(info["url"])


def start(timeout: float = 180.0, *, on_demand: bool = False) -> dict[str, Any]:
    """Start the local server (or return the one that runs) and wait until it answers; two
    starts at once start one server (the second waits for the first and returns it).
    ``on_demand``: started by a warm process, which stops it when it stops; a user's
    ``server start`` of such a server makes it theirs (it then runs until ``server stop``)."""
    import fcntl

    lock = state_dir() / "prefect-server.lock"
    try:
        fh = open(lock, "a")  # noqa: SIM115 - held until the server answers
    except OSError as exc:
        raise ServerError(
            f"cannot write the state directory {state_dir()} ({exc.strerror}); make it "
            "writable, or point LABELWISE_HOME at a writable folder"
        ) from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        info = running()
        if info is not None:
            if info.get("on_demand") and not on_demand:
                info.pop("on_demand")
                server_file().write_text(json.dumps(info))
            return info | {"already": True}
        return _start(timeout, on_demand)


def _start(timeout: float, on_demand: bool) -> dict[str, Any]:
    from labelwise.pipeline.environment import configure_environment

    configure_environment()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = state_dir() / "prefect-server.log"
    exe = Path(sys.executable).parent / "prefect"
    cmd = [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # the UI asks the server where its API is: by default host and port from settings, not
    # the --port given, so it would look at :4200 and show "Can't connect to Server API"
    env |= {
        "PREFECT_SERVER_UI_API_URL": url,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    pid = start_detached(cmd, log, env)
    deadline = time.monotonic() + timeout
    while not healthy(url, timeout=1.0):
        if not pid_alive(pid) or time.monotonic() > deadline:
            _kill(pid)
            tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
            raise ServerError(f"the local Prefect server did not start (log {log}):\n{tail}")
        time.sleep(0.3)
    info = {
        "pid": pid,
        "started": process_started(pid),
        "url": url,
        "ui": url.removesuffix("/api"),
        "log": str(log),
    } | ({"on_demand": True} if on_demand else {})
    try:
        server_file().write_text(json.dumps(info))
    except OSError as exc:
        _kill(pid)  # a server no later command could find is a process left behind
        raise ServerError(f"cannot write {server_file()} ({exc.strerror})") from None
    return info


def stop() -> dict[str, Any] | None:
    """Stop the local server; the info of the one stopped (``gone``: it had ended, and its
    pid, if alive, now is another process's, left alone), or None when none was recorded."""
    f = server_file()
    if not f.is_file():
        return None
    try:
        info: dict[str, Any] = json.loads(f.read_text())
        is_ours = ours(info)
    except (ValueError, KeyError, TypeError):
        f.unlink(missing_ok=True)
        return None
    if is_ours:
        _kill(int(info["pid"]))
    f.unlink(missing_ok=True)
    return info | {"gone": not is_ours}


def _kill(pid: int) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pid_alive(pid):
            return


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
