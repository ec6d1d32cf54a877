"""Fixtures for the end-to-end tests: a moto emulator and the function under `cargo lambda watch`, shaped
like the template: an API instance and a separate worker instance, each running several invocations at once.

`stack` (session): starts scripts/moto_server.py on a free loopback port, creates tables and the queue with
names unique to this run (scripts/local_aws.py bootstrap), builds the function, and starts two
`cargo lambda watch -A 127.0.0.1 -P <free port> --concurrency N` (API: 8 instances, worker: 4) with the
function's environment in a private env file, so that cargo-lambda's own launch line never shows the
secret. Everything is stopped at the end (each service runs in its own process group). Logs go to a
temporary folder named in failures.
`fresh_stack` (per test): the same stack, emptied first (moto reset + bootstrap), since the expectations
in events/expectations.json assume an empty stack.
Tools come from $CCKM_VENV (default: the repository's .venv, made by `make venv`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("CCKM_VENV", REPO / ".venv"))
PY = VENV / "bin" / "python"
CARGO_LAMBDA = VENV / "bin" / "cargo-lambda"
FUNCTION = "cckm-aws-sync"
JWT_SECRET = "local-dev-secret-change-me"  # the secret events/ are signed with
# What the function reads from its environment file.
FUNCTION_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "KMS_TABLE", "JOBS_TABLE", "KEYS_TABLE", "WORK_QUEUE_NAME", "WORK_QUEUE_URL", "JWT_HS256_SECRET",
                "RUST_LOG", "SYNC_CLAIM_SECONDS", "SYNC_LEASE_SECONDS", "COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID",
                "SCHEDULER_TARGET_ARN", "SCHEDULER_ROLE_ARN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode} before listening on {port}; log {log}:\n"
                        + log.read_text()[-3000:])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout}s; log {log}")


def spawn(cmd, log, env=None, append=False):
    return subprocess.Popen(
        [str(c) for c in cmd], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=open(log, "ab" if append else "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


API_CONCURRENCY, WORKER_CONCURRENCY = 8, 4


class Stack:
    def __init__(self, endpoint, api_port, worker_port, env, logs):
        self.endpoint, self.api_port, self.worker_port, self.env, self.logs = (
            endpoint, api_port, worker_port, env, logs)
        self.watch = {}  # name -> (its process, a function that starts it again)

    def kill_worker(self):
        """Kills the worker instance and every invocation it runs, as a crash or a timeout would."""
        proc, _ = self.watch["worker"]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def start_worker(self):
        _, start = self.watch["worker"]
        self.watch["worker"] = (start(), start)

    def bootstrap(self):
        out = subprocess.run(
            [str(PY), str(REPO / "scripts" / "local_aws.py"), "bootstrap", "--endpoint", self.endpoint],
            env=self.env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, f"bootstrap failed:\n{out.stderr}"
        printed = dict(line.split("=", 1) for line in out.stdout.strip().splitlines() if "=" in line)
        # The function keeps its pool: ids are made from the pool's name (moto_server.py), so equal again.
        for name in ("COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID"):
            assert self.env.setdefault(name, printed[name]) == printed[name], f"{name} changed"
        self.admin = (printed["CCKM_USERNAME"], printed["CCKM_PASSWORD"])
        return printed["WORK_QUEUE_URL"]

    def reset(self):
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=30).read()
        self.bootstrap()

    @property
    def api_url(self):
        """The API's function URL (`cargo lambda watch` serves one per function)."""
        return f"http://127.0.0.1:{self.api_port}/lambda-url/{FUNCTION}"

    def invoke(self, data_file, timeout=300, worker=False):
        """`cargo lambda invoke` on the API instance, or on the worker's: returns (exit code, parsed stdout
        or raw text, stderr)."""
        port = self.worker_port if worker else self.api_port
        out = subprocess.run(
            [str(CARGO_LAMBDA), "lambda", "invoke", FUNCTION, "--data-file", str(data_file),
             "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--output-format", "json"],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        try:
            answer = json.loads(out.stdout) if out.stdout.strip() else None
        except ValueError:
            answer = out.stdout
        return out.returncode, answer, out.stderr


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    if not (PY.exists() and CARGO_LAMBDA.exists()):
        pytest.fail(f"no venv with cargo-lambda at {VENV}: run `make venv`")
    logs = tmp_path_factory.mktemp("e2e-logs")
    run_id = uuid.uuid4().hex[:8]
    emulator_port, api_port, worker_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "KMS_TABLE": f"e2e-{run_id}-kms", "JOBS_TABLE": f"e2e-{run_id}-jobs", "KEYS_TABLE": f"e2e-{run_id}-keys",
        "WORK_QUEUE_NAME": f"e2e-{run_id}-work", "JWT_HS256_SECRET": JWT_SECRET,
        # A copy of a message whose delivery died takes over after 5 s, not 5 minutes, and a job whose
        # workers are all gone can be ended after 20 s, not 2 hours (test_faults.py).
        "SYNC_CLAIM_SECONDS": "5", "SYNC_LEASE_SECONDS": "20",
        # Where job configurations' schedules point (moto keeps them; nothing fires them locally).
        "SCHEDULER_TARGET_ARN": f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}",
        "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/cckm-aws-sync-scheduler",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
    })
    procs, stack = [], None
    try:
        moto_log = logs / "moto.log"
        procs.append(spawn([PY, REPO / "scripts" / "moto_server.py", "-H", "127.0.0.1", "-p", emulator_port],
                           moto_log))
        wait_port(emulator_port, procs[-1], moto_log, 60)
        stack = Stack(endpoint, api_port, worker_port, env, logs)
        env["WORK_QUEUE_URL"] = stack.bootstrap()

        build = subprocess.run(["cargo", "build", "--bin", FUNCTION], cwd=REPO, env=env,
                               capture_output=True, text=True)
        if build.returncode != 0:
            pytest.fail(f"cargo build --bin {FUNCTION} failed:\n{build.stderr[-4000:]}")
        # The function's environment in a file only we can read; cargo-lambda itself logs at its own level
        # (at `info` for every crate it would print the whole environment of each instance it starts).
        env_file = logs / "function.env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f'{name}="{env[name]}"\n' for name in FUNCTION_ENV))
        watch_env = {k: v for k, v in env.items() if k not in FUNCTION_ENV}
        watch_env["RUST_LOG"] = "cargo_lambda=info"
        for name, port, concurrency in (("api", api_port, API_CONCURRENCY),
                                        ("worker", worker_port, WORKER_CONCURRENCY)):
            log = logs / f"watch-{name}.log"

            def start(port=port, concurrency=concurrency, log=log):
                proc = spawn([CARGO_LAMBDA, "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1",
                              "-P", port, "--concurrency", concurrency, "--env-file", env_file],
                             log, watch_env, append=True)
                wait_port(port, proc, log, 120)
                return proc

            stack.watch[name] = (start(), start)
        print(f"e2e stack: emulator {endpoint}, API on 127.0.0.1:{api_port}, worker on 127.0.0.1:{worker_port}, "
              f"logs {logs}", file=sys.stderr)
        yield stack
    finally:
        for proc, _ in stack.watch.values() if stack else ():
            stop(proc)
        for proc in reversed(procs):
            stop(proc)


@pytest.fixture
def fresh_stack(stack):
    stack.reset()
    return stack
