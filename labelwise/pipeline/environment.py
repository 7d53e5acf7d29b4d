"""Where labelwise keeps its embedded state, and the environment the servers-free mode needs.

With no server configured, MLflow uses SQLite + local artifacts and Prefect its ephemeral API,
both under one state directory: ``$LABELWISE_HOME``, else ``./.labelwise``. Pointing at real
servers is the standard way: ``MLFLOW_TRACKING_URI`` (or ``tracking.tracking_uri`` in the config)
and ``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def state_dir() -> Path:
    d = Path(os.environ.get("LABELWISE_HOME", ".labelwise")).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine: it exists (someone else's counts) and is
    not a zombie (exited, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux), or it exited meanwhile
        return True


def process_started(pid: int) -> str | None:
    """When process ``pid`` started, as the OS tells it (``/proc``, else ``ps``): with the pid,
    an identity that a process reusing the pid does not share. None when none runs."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    import subprocess

    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def artifact_root() -> str:
    return (state_dir() / "mlartifacts").as_uri()


def configure_environment() -> None:
    """Set embedded defaults before prefect / mlflow are imported (no effect on set vars)."""
    home = state_dir()
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a first start migrates a fresh database: on a busy 2-core machine that exceeds 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home / "prefect" / "storage"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no telemetry notice in a job's output
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    os.environ.setdefault("MLFLOW_ENABLE_TRACKING_AUTO_LOGGING", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    # a tracking server that went away: a few retries over ~15 s, then the run fails (MLflow's
    # own default retries for minutes, which an unattended job spends holding its resources)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")


# Started through this launcher, which exits at once: the process is then nobody's child, so
# the watchdog that ends a killed command's children (reap_children_on_exit) spares it.
_LAUNCHER = """
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True)
print(p.pid, flush=True)
"""


def start_detached(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: str | None = None
) -> int:
    """Start ``cmd`` in a session of its own, its output appended to ``log``, as nobody's
    child (it outlives this process and its watchdog); its pid."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-I", "-c", _LAUNCHER, str(log), *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of any URI in it (``http://user:pass@host``) replaced by
    ``***``: for every message, log line, tag and param labelwise writes."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


# Runs in a separate, minimal Python process (`python -I -c`): every second it notes the
# processes descended from PARENT; once PARENT is gone (killed, even with -9), it sends them
# SIGTERM, then SIGKILL to what is left after 5 s, and exits once none is left.
_REAPER = """
import os, signal, sys, time
parent, me = int(sys.argv[1]), os.getpid()
def children():
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as fh:
                    ppid = int(fh.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = set(), [parent]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out and k != me:
                out.add(k)
                todo.append(k)
    return out
seen = set()
while os.getppid() == parent:
    seen = children() or seen
    time.sleep(1)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in list(seen):
        try:
            os.kill(pid, sig)
        except OSError:
            seen.discard(pid)
    for _ in range(50):
        if not seen:
            sys.exit()
        seen = {p for p in seen if os.path.exists(f'/proc/{p}')}
        time.sleep(0.1)
"""


_REAPER_STARTED = False


def reap_children_on_exit() -> None:
    """Make sure the processes this one starts (Prefect's ephemeral API server, Dask workers)
    end with it, even when it is killed: a watchdog process ends them once this one is gone.
    Linux only (it reads /proc); elsewhere it does nothing."""
    import subprocess
    import sys

    global _REAPER_STARTED
    if _REAPER_STARTED or not Path("/proc/self/stat").exists():
        return
    _REAPER_STARTED = True
    subprocess.Popen(
        [sys.executable, "-I", "-c", _REAPER, str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
