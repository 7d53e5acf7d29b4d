"""The ``labelwise`` executable: a command goes to a warm process when one is ready, else it
runs here, cold, and leaves a warm process for the next one (``pipeline/warm_process.py``).

The client side imports nothing heavy: it connects to the state directory's socket, sends its
arguments, working directory and environment with its stdin, stdout and stderr (file
descriptors, so the warm process writes to the same terminal or file), forwards Ctrl-C and
SIGTERM to it, and exits with its exit code. Anything that goes wrong before the warm process
has taken the command (no socket, a refused or reset connection) runs the command cold.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labelwise.engine.errors import LabelwiseError
from labelwise.pipeline import warm_process as wp
from labelwise.pipeline.environment import process_started, state_dir


def main() -> None:
    argv = sys.argv[1:]
    try:
        idle = wp.idle_seconds() if wp.eligible(argv) else 0
    except LabelwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if idle:
        k = wp.key()
        code = _remote(k, argv)
        if code is not None:
            raise SystemExit(code)
    from labelwise.cli import app

    try:
        app(args=argv, prog_name="labelwise")
    finally:
        if idle:
            _leave_warm(k, idle)


def _remote(k: str, argv: list[str]) -> int | None:
    """Run the command in the warm process for key ``k``: its exit code, or None when there
    is none ready (the caller then runs the command itself)."""
    path = wp.socket_path(k)
    if not path.exists():
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)  # a ready warm process answers at once
        s.connect(str(path))
        reader = s.makefile("rb")
        hello = reader.readline().split()
        if len(hello) != 2 or hello[0] != b"ok":
            s.close()
            return None
        pid = int(hello[1])
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        socket.send_fds(s, [b"F"], [0, 1, 2])
        s.sendall(json.dumps(request).encode() + b"\n")
        s.settimeout(None)  # the command takes as long as it takes
    except (OSError, ValueError):
        s.close()
        return None

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    try:
        last = reader.readline().split()
    except OSError:
        last = []
    if len(last) == 2 and last[0] == b"exit":
        return int(last[1])
    print(
        f"error: the warm labelwise process (pid {pid}) ended before the command did; see "
        f"{state_dir() / 'warm.log'}",
        file=sys.stderr,
    )
    return 1


def _leave_warm(k: str, idle: int) -> None:
    """After a cold command: start a warm process for the next one, unless one lives."""
    try:
        if len(str(wp.socket_path(k))) > wp.MAX_SOCKET_PATH or wp.held(wp.lock_path(k)):
            return
        wp.spawn(k)
    except (OSError, subprocess.CalledProcessError):
        return  # a read-only state directory: commands simply stay cold
    if sys.stderr.isatty():
        print(
            f"(a warm labelwise process now waits {idle} s for the next command; "
            f"{wp.SETTING}=0 turns this off)",
            file=sys.stderr,
        )


# --- the warm process -----------------------------------------------------------------------

# imported once, before any command: what train, predict, evaluate, validate, promote and
# monitor import between them (measured with -X importtime)
PRELOAD = (
    "numpy",
    "polars",
    "pyarrow",
    "pyarrow.parquet",
    "scipy.sparse",
    "sklearn.metrics",
    "lightgbm",
    "great_expectations",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "prefect",
    "prefect.flows",
    "prefect.tasks",
    "matplotlib.pyplot",
    "labelwise.cli",
    "labelwise.engine.classifier",
    "labelwise.mlflow_model",
    "labelwise.flows.train",
    "labelwise.flows.predict",
    "labelwise.flows.promote",
    "labelwise.flows.monitor",
    "labelwise.flows.tune",
    "labelwise.tasks.contract_check",
    "labelwise.tasks.scoring",
)


def serve(k: str, successor: bool) -> None:
    """Wait for one command for key ``k``, run it, hand over to a successor; stop after the
    idle time with none. ``successor``: started by the previous warm process, which still
    holds the lock until it exits."""
    import fcntl
    import importlib

    idle = wp.idle_seconds()
    lock = open(wp.lock_path(k), "a")  # noqa: SIM115 - held for this process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if successor else fcntl.LOCK_NB))
    except BlockingIOError:
        _log("another warm process serves this key")
        return
    home, base_env = os.getcwd(), dict(os.environ)
    from labelwise.pipeline import prefect_server

    if not os.environ.get("PREFECT_API_URL"):  # the state directory's server, on demand
        os.environ["PREFECT_API_URL"] = prefect_server.start(on_demand=True)["url"]
    from labelwise import cli

    cli._env(False)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # an extra that is not installed
            importlib.import_module(name)
    listener, mine = _listen(k)
    taken = _wait_for_command(listener, k, mine, idle)
    listener.close()
    if taken is None:
        return
    _unlink_if_mine(wp.socket_path(k), mine)
    wp.info_path(k).unlink(missing_ok=True)
    conn, request = taken
    code = _run_command(conn, request)
    with contextlib.suppress(OSError):
        conn.sendall(f"exit {code}\n".encode())
    conn.close()
    wp.spawn(k, successor=True, env=base_env, cwd=home)


def _listen(k: str) -> tuple[socket.socket, int]:
    """Listen on key ``k``'s socket (bound under a temporary name, renamed when ready: a
    client never connects to a process still importing) and record this process; the
    listener and the socket file's inode."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = wp.socket_path(k).with_suffix(f".{os.getpid()}")
    tmp.unlink(missing_ok=True)
    listener.bind(str(tmp))
    os.chmod(tmp, 0o600)
    listener.listen(8)
    os.replace(tmp, wp.socket_path(k))
    mine = os.stat(wp.socket_path(k)).st_ino
    wp.info_path(k).write_text(
        json.dumps(
            {"pid": os.getpid(), "started": process_started(os.getpid()), "key": k,
             "since": time.time()}
        )
    )  # fmt: skip
    _log(f"ready ({wp.socket_path(k)}, Prefect API {os.environ['PREFECT_API_URL']})")
    return listener, mine


def _wait_for_command(
    listener: socket.socket, k: str, mine: int, idle: int
) -> tuple[socket.socket, dict[str, Any]] | None:
    """The first client's command; None, retired, after ``idle`` seconds without one or
    once the Prefect server is gone."""
    listener.settimeout(idle)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            _log(f"no command for {idle} s: stopping")
            _retire(k, mine)
            return None
        taken = _take(conn)
        if taken is False:  # the Prefect server went away: let a new warm process start
            _log(f"the Prefect server at {os.environ['PREFECT_API_URL']} is gone: stopping")
            _retire(k, mine, stop_server=False)
            return None
        if isinstance(taken, tuple):
            return taken


def _take(conn: socket.socket) -> tuple[socket.socket, dict[str, Any]] | bool | None:
    """Greet a client and read its command; None (connection closed) when it is not ours or
    hung up, False when the Prefect server this process was set up for is gone."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], sys.byteorder) != os.getuid():
            raise OSError("another user")
        if not _server_alive():
            conn.sendall(b"no\n")
            conn.close()
            return False
        conn.sendall(f"ok {os.getpid()}\n".encode())
        _, fds, _, _ = socket.recv_fds(conn, 1, 3)
        line = conn.makefile("rb").readline()
        request: dict[str, Any] = json.loads(line)
        if len(fds) != 3:
            raise OSError("no terminal")
    except (OSError, ValueError):
        conn.close()
        return None
    request["fds"] = fds
    return conn, request


def _run_command(conn: socket.socket, request: dict[str, Any]) -> int:
    """Run one command line as the client would have: its directory, environment, stdio."""
    from labelwise import cli

    api = os.environ["PREFECT_API_URL"]  # what Prefect was imported with
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.setdefault("PREFECT_API_URL", api)
    for i, fd in enumerate(request["fds"]):
        os.dup2(fd, i)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    for i, name in ((1, "stdout"), (2, "stderr")):
        line = os.isatty(i) or i == 2
        stream = open(i, "w", 1 if line else -1, "utf-8", "replace", closefd=False)  # noqa: SIM115
        setattr(sys, name, stream)
    sys.argv = ["labelwise", *request["argv"]]
    from rich.console import Console

    cli.console = Console(stderr=True, soft_wrap=True)  # colours and width of this terminal
    cli.out = Console(soft_wrap=True)
    done = threading.Event()

    def watch() -> None:  # the client was killed: interrupt the command (its run ends FAILED)
        with contextlib.suppress(OSError):
            conn.recv(1)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)
        if not done.wait(30):  # stuck in native code that never returns to Python
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    code: int = 0
    try:
        cli.app(args=request["argv"], prog_name="labelwise")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        done.set()
        for name in ("stdout", "stderr"):
            with contextlib.suppress(OSError):
                getattr(sys, name).flush()
        null = os.open(os.devnull, os.O_RDWR)
        for i in range(3):  # nothing this process writes later reaches the user's terminal
            os.dup2(null, i)
        os.close(null)
    return code


def _log(message: str) -> None:
    """A line in ``warm.log`` (this process's stderr), dated."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} warm process {os.getpid()}: {message}",
          file=sys.stderr, flush=True)  # fmt: skip


def _unlink_if_mine(path: Path, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except OSError:
        pass


def _server_alive() -> bool:
    """Whether the Prefect API this process was set up with is still there: the state
    directory's own server while its process lives (an answer slowed by load is no death),
    any other one while it answers."""
    from labelwise.pipeline import prefect_server

    url = os.environ["PREFECT_API_URL"]
    info = prefect_server.recorded()
    if info is not None and info.get("url") == url:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return prefect_server.ours(info)
    return prefect_server.healthy(url, timeout=10.0)


def _retire(k: str, inode: int, stop_server: bool = True) -> None:
    """Remove the socket and record; after an idle wait (``stop_server``), also stop the
    Prefect server a warm process started, unless another warm process of this state
    directory still lives."""
    from labelwise.pipeline import prefect_server

    _unlink_if_mine(wp.socket_path(k), inode)
    wp.info_path(k).unlink(missing_ok=True)
    if not stop_server:
        return
    others = [p for p in state_dir().glob("warm-*.lock") if p != wp.lock_path(k)]
    info = prefect_server.recorded()
    if info is not None and info.get("on_demand") and not any(wp.held(p) for p in others):
        prefect_server.stop()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2], "--successor" in sys.argv[3:])
    else:
        main()
