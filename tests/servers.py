"""Real servers for the system tests: MLflow and Prefect on PostgreSQL, started as processes with
the scripts of ``infra/local`` (the same servers as ``infra/compose.yaml``, without Docker).

PostgreSQL comes from ``LABELWISE_TEST_POSTGRES`` (an admin URL, default the machine's
``postgresql://postgres@127.0.0.1:5432/postgres``). When it cannot be reached the system tests
FAIL with a message saying so; ``LABELWISE_SYSTEM_TESTS=skip`` turns that into a visible skip for
a machine without PostgreSQL. Each session gets its own databases, dropped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "infra" / "local"
ADMIN_URL = os.environ.get(
    "LABELWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BIN = Path(sys.executable).parent


def labelwise(
    home: Path, *args: str, timeout: float = 600, state_env: bool = True, warm: str | None = None
) -> subprocess.CompletedProcess:
    """The ``labelwise`` command as a user runs it: its own process, state directory ``home``
    (also its working directory; with ``state_env=False`` no LABELWISE_HOME, so the default
    ``./.labelwise`` of that directory), no Prefect or MLflow settings of the tests; ``warm``:
    its LABELWISE_WARM, outside CI (the tests' own is 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("LABELWISE_HOME", None)
    if state_env:
        env["LABELWISE_HOME"] = str(home)
    env["HOME"] = str(home / "user")  # what labelwise writes outside its state directory
    if warm is not None:
        env.pop("CI", None)
        env["LABELWISE_WARM"] = warm
    return subprocess.run(
        [str(Path(sys.executable).parent / "labelwise"), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_job(home: Path, name: str = "shared", rows: int = 300) -> Path:
    """A small job in ``home`` for the state directory's own store: a generated table and
    ``job.yaml`` (fast preset)."""
    from labelwise.engine.synthetic import make_multilabel_table

    table = make_multilabel_table(n_rows=rows, n_labels=4, seed=4)
    return helpers.write_job(home, name, table, store=False)[0]


def require_postgres() -> None:
    """Fail loudly (or skip when told to) when PostgreSQL is not reachable."""
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=5).close()
    except Exception as exc:
        msg = (
            f"PostgreSQL is NOT reachable at {ADMIN_URL} ({type(exc).__name__}: {exc}). The "
            "system tests need it: start it (pg_ctlcluster <version> main start) or point "
            "LABELWISE_TEST_POSTGRES at one; LABELWISE_SYSTEM_TESTS=skip skips them."
        )
        if os.environ.get("LABELWISE_SYSTEM_TESTS") == "skip":
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)


def _db_url(name: str, driver: str = "postgresql") -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{driver}{base.removeprefix('postgresql')}/{name}"


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "LABELWISE_HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"),
            "PYTHONUNBUFFERED": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        }
    )
    return env


class Process:
    """A server process with its log file; ``stop`` terminates it (then kills)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._fh.close()


def http(
    url: str, auth: str | None = None, payload: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    """(status, decoded JSON body) of a GET, or a POST when ``payload`` is given."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            try:
                return r.status, json.loads(body) if body else None
            except ValueError:  # a plain-text answer (MLflow's /health says OK)
                return r.status, body.decode(errors="replace")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body) if body else None
        except ValueError:
            return e.code, body.decode(errors="replace")


def wait_until(check, what: str, proc: Process, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up; its log:\n{proc.tail()}")
        time.sleep(1)


class Stack:
    """MLflow (basic auth) + Prefect (basic auth) on fresh PostgreSQL databases."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"lwtest_{secrets.token_hex(4)}"
        self.mlflow_password = secrets.token_urlsafe(18)
        self.prefect_auth = f"admin:{secrets.token_urlsafe(18)}"
        self.mlflow_port, self.prefect_port = free_port(), free_port()
        self.mlflow_url = f"http://127.0.0.1:{self.mlflow_port}"
        self.prefect_api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.procs: list[Process] = []
        self.mlflow: Process | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Stack:
        subprocess.run(
            ["bash", str(LOCAL / "create-databases.sh"), ADMIN_URL, self.prefix],
            check=True,
            capture_output=True,
            env=_base_env(self.root),
        )
        self.start_mlflow()
        env = _base_env(self.root) | {"PREFECT_SERVER_API_AUTH_STRING": self.prefect_auth}
        prefect = Process(
            [
                "bash",
                str(LOCAL / "start-prefect.sh"),
                _db_url(f"{self.prefix}_prefect", "postgresql+asyncpg"),
                str(self.prefect_port),
            ],
            env,
            self.root / "prefect-server.log",
            self.root,
        )
        self.procs.append(prefect)
        wait_until(lambda: http(f"{self.prefect_api}/health")[0] == 200, "prefect server", prefect)
        wait_until(
            lambda: http(f"{self.mlflow_url}/health")[0] == 200, "mlflow server", self.mlflow
        )
        return self

    def start_mlflow(self) -> None:
        env = _base_env(self.root) | {
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_WORKERS": "1",
        }
        self.mlflow = Process(
            [
                "bash",
                str(LOCAL / "start-mlflow.sh"),
                _db_url(f"{self.prefix}_mlflow"),
                _db_url(f"{self.prefix}_mlflow_auth"),
                str(self.mlflow_port),
                str(self.root / "artifacts"),
            ],
            env,
            self.root / "mlflow-server.log",
            self.root,
        )
        self.procs.append(self.mlflow)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        try:
            import psycopg

            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                for db in ("mlflow", "mlflow_auth", "prefect"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.prefix}_{db}" WITH (FORCE)')
        except Exception as exc:  # leave the databases, say so
            print(f"could not drop {self.prefix}_* databases: {exc}")

    # --- clients -----------------------------------------------------------------------------
    def client_env(self, home: Path) -> dict[str, str]:
        """What a labelwise user, worker or CLI on this stack has in its environment."""
        return _base_env(home) | {
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_API_AUTH_STRING": self.prefect_auth,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_password,
        }

    def run(
        self, args: list[str], home: Path, timeout: float = 600, **kw: Any
    ) -> subprocess.CompletedProcess:
        exe = shutil.which(args[0], path=str(BIN)) or args[0]
        return subprocess.run(
            [exe, *args[1:]],
            env=self.client_env(home) | kw.pop("env", {}),
            cwd=kw.pop("cwd", home),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )

    def mlflow_get(self, path: str, **params: str) -> tuple[int, Any]:
        from urllib.parse import urlencode

        return http(
            f"{self.mlflow_url}/api/2.0/mlflow/{path}?{urlencode(params)}",
            auth=f"admin:{self.mlflow_password}",
        )

    def mlflow_post(self, path: str, payload: Any) -> tuple[int, Any]:
        return http(
            f"{self.mlflow_url}/api/2.0/mlflow/{path}",
            auth=f"admin:{self.mlflow_password}",
            payload=payload,
        )

    def prefect_post(self, path: str, payload: Any) -> tuple[int, Any]:
        return http(f"{self.prefect_api}/{path}", auth=self.prefect_auth, payload=payload)
