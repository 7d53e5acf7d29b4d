"""The warm process: a ``labelwise`` interpreter that has already imported what commands need.

A command's fixed cost is imports (great-expectations, MLflow, LightGBM, Prefect: ~5 s) and
Prefect's ephemeral API (~7 s). After a command, labelwise leaves one warm process per state
directory and environment: it has started (or found) the local Prefect server, imported the
libraries, and waits on a Unix socket in the state directory. The next command hands it its
arguments, working directory, environment and terminal, and it runs exactly that one command,
then hands the socket to a fresh successor and exits: no fork, every command still gets a
process of its own. After ``LABELWISE_WARM`` seconds (default 600) without a command it stops,
with the Prefect server it started. ``LABELWISE_WARM=0`` (the default when ``CI`` is set)
turns it off: every command then starts cold and leaves nothing behind.

This module is the bookkeeping both sides share: the setting, which environment a warm
process may serve (its key), where it listens, and how to start, find and stop one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from labelwise.engine.errors import ConfigError
from labelwise.pipeline.environment import (
    pid_alive,
    process_started,
    start_detached,
    state_dir,
)

SETTING = "LABELWISE_WARM"
DEFAULT_IDLE = 600
# the commands a warm process runs; `server`, `worker`, `deploy` and `trigger` are about a
# Prefect server that outlives commands, not one a warm process started for itself, and
# `demo` is the embedded quickstart: it leaves no server behind
COMMANDS = frozenset(
    {"train", "tune", "validate", "evaluate", "promote", "rollback", "predict", "monitor",
     "config"}
)  # fmt: skip
# variables a terminal or shell changes between commands, read by nothing at import time
_VOLATILE = frozenset(
    {"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR",
     "FORCE_COLOR", "PS1", "LS_COLORS", "DISPLAY", "WINDOWID", "TMUX", "TMUX_PANE", "STY",
     "WINDOW", "GPG_TTY", "HISTFILE"}
)  # fmt: skip
_VOLATILE_PREFIXES = ("SSH_", "TERM_", "XDG_SESSION_")


def idle_seconds(environ: dict[str, str] | None = None) -> int:
    """How long a warm process waits for a command; 0: no warm process."""
    env = os.environ if environ is None else environ
    raw = env.get(SETTING)
    if sys.platform == "win32":  # Unix sockets passing file descriptors, fcntl locks
        return 0
    if raw is None:
        return 0 if env.get("CI", "").lower() not in ("", "0", "false", "no") else DEFAULT_IDLE
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"{SETTING}={raw!r}: give the seconds a warm process waits for the next command "
            "(0 turns it off)",
            param=SETTING,
        )
    return value


def eligible(argv: list[str]) -> bool:
    """Whether a warm process may run this command line (not help, not --debug)."""
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] in COMMANDS and not {"--debug", "--help", "-h"} & set(argv)


def key(environ: dict[str, str] | None = None) -> str:
    """What a warm process must share with a command to run it: the interpreter, the
    environment (libraries read parts of it once, at import), and the code it imported."""
    env = os.environ if environ is None else environ
    kept = sorted(
        (k, v)
        for k, v in env.items()
        if k not in _VOLATILE and not k.startswith(_VOLATILE_PREFIXES)
    )
    h = hashlib.sha256(json.dumps([sys.executable, kept]).encode())
    for p in sys.path:  # an installed or removed package changes its folder's mtime
        if Path(p).name in ("site-packages", "dist-packages"):  # not a checkout's own folder,
            with contextlib.suppress(OSError):  # where every file written changes it
                h.update(f"{p}:{os.stat(p).st_mtime_ns}".encode())
    h.update(_code_stamp().encode())
    return h.hexdigest()[:16]


def _code_stamp() -> str:
    """The newest mtime among labelwise's own files: an edited checkout gets a new key."""
    root = Path(__file__).resolve().parents[1]
    newest = 0
    todo = [root]
    while todo:
        with os.scandir(todo.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=True) and e.name != "__pycache__":
                    todo.append(Path(e.path))
                elif e.name.endswith(".py"):
                    newest = max(newest, e.stat().st_mtime_ns)
    return str(newest)


# a Unix socket's path is at most 107 bytes (Linux): a deeper state directory stays cold
MAX_SOCKET_PATH = 100


def socket_path(k: str) -> Path:
    return state_dir() / f"warm-{k}.sock"


def lock_path(k: str) -> Path:
    return state_dir() / f"warm-{k}.lock"


def info_path(k: str) -> Path:
    return state_dir() / f"warm-{k}.json"


def spawn(
    k: str, *, successor: bool = False, env: dict[str, str] | None = None, cwd: str | None = None
) -> int:
    """Start a warm process for key ``k`` in the background, detached (a terminal's Ctrl-C
    and a command's watchdog do not reach it); its pid. Its output goes to ``warm.log``."""
    cmd = [sys.executable, "-m", "labelwise.launcher", "--serve", k]
    return start_detached(
        cmd + (["--successor"] if successor else []), state_dir() / "warm.log", env, cwd
    )


def held(lock: Path) -> bool:
    """Whether a live warm process holds this lock file."""
    import fcntl

    try:
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def running() -> list[dict[str, Any]]:
    """The state directory's live warm processes (pid, key, since), newest first."""
    found = []
    for f in state_dir().glob("warm-*.json"):
        try:
            info = json.loads(f.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid_alive(pid) and process_started(pid) == info.get("started"):
            found.append(info)
    return sorted(found, key=lambda i: -float(i.get("since", 0)))


def stop_all() -> list[int]:
    """Stop the state directory's warm processes (and their records); the pids stopped."""
    stopped = []
    for info in running():
        pid = int(info["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
        stopped.append(pid)
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in stopped) and time.monotonic() < deadline:
        time.sleep(0.1)
    for f in state_dir().glob("warm-*.json"):
        f.unlink(missing_ok=True)
    for f in state_dir().glob("warm-*.sock"):
        f.unlink(missing_ok=True)
    return stopped
