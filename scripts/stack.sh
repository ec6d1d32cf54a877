#!/usr/bin/env bash
# Local stack for cckm-aws-sync, driven by `make up` / `make down` (run from the repository root).
#
#   up:   moto emulator (scripts/moto_server.py) -> bootstrap tables/queues -> the function under two
#         `cargo lambda watch`, shaped like the template: the API instance (API_PORT, API_CONCURRENCY
#         invocations at once, default 4) and the worker instance (WORKER_PORT, WORKER_CONCURRENCY, default
#         4), with the function's environment from a private file -> SQS pump (scripts/sqs_pump.py, as many
#         pollers as the worker runs invocations) -> KMS "demo" and "demo-b" registered;
#         then prints API_URL, AWS_ENDPOINT_URL and TOKEN on stdout (everything else goes to stderr) and saves
#         them in .local/env.
#   down: stops what `up` started (process groups recorded in .local/*.pid); safe to repeat.
# Each background service runs in its own process group (set -m), so stopping it also stops its children
# (cargo lambda watch -> cargo run -> the function). Logs: .local/<name>.log.
# Settings (env, set by the Makefile): API_PORT WORKER_PORT API_CONCURRENCY WORKER_CONCURRENCY EMULATOR_PORT
# FUNCTION KMS_TABLE JOBS_TABLE KEYS_TABLE WORK_QUEUE_NAME JWT_HS256_SECRET RUST_LOG READY_TIMEOUT VENV.
set -euo pipefail
set -m

LOCAL=.local
VENV=${VENV:-.venv}
PY=$VENV/bin/python
API_PORT=${API_PORT:-9000}
WORKER_PORT=${WORKER_PORT:-9001}
API_CONCURRENCY=${API_CONCURRENCY:-4}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-4}
EMULATOR_PORT=${EMULATOR_PORT:-5000}
FUNCTION=${FUNCTION:-cckm-aws-sync}
READY_TIMEOUT=${READY_TIMEOUT:-900}
ENDPOINT=http://127.0.0.1:$EMULATOR_PORT
API_BASE=http://127.0.0.1:$API_PORT

say() { echo "[stack] $*" >&2; }
die() { echo "[stack] ERROR: $*" >&2; exit 1; }

alive() { # alive NAME: its recorded process group still has a live leader
  local f=$LOCAL/$1.pid
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_busy() { "$PY" - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# wait_http URL NAME TIMEOUT: until URL gives any HTTP answer; prints the status code
wait_http() { "$PY" - "$@" <<'PY'
import sys, time, urllib.request, urllib.error
url, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.time() + timeout
while True:
    try:
        with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.time())) as r:
            print(r.status); break
    except urllib.error.HTTPError as e:
        print(e.code); break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"[stack] ERROR: {name} did not answer at {url} within {timeout:.0f}s")
        time.sleep(0.5)
PY
}

start() { # start NAME CMD...: in the background, own process group, log to .local/NAME.log
  local name=$1; shift
  "$@" >"$LOCAL/$name.log" 2>&1 </dev/null &
  echo $! >"$LOCAL/$name.pid"
  say "$name started (pid $!, log $LOCAL/$name.log)"
}

check_alive() { # check_alive NAME: fail with its log tail if it died
  alive "$1" && return 0
  tail -n 30 "$LOCAL/$1.log" >&2 || true
  die "$1 exited; see $LOCAL/$1.log"
}

stop() { # stop NAME: TERM its process group, then KILL after 10 s
  local f=$LOCAL/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "$1 stopped (pid $pid)"
  fi
  rm -f "$f"
}

up() {
  mkdir -p "$LOCAL"
  [[ -x $PY ]] || die "no $PY; run make venv"

  # 1. emulator
  if alive moto; then
    say "moto already running (pid $(cat $LOCAL/moto.pid))"
  else
    port_busy "$EMULATOR_PORT" && die "port $EMULATOR_PORT is taken by another program (set EMULATOR_PORT=...)"
    start moto "$PY" scripts/moto_server.py -H 127.0.0.1 -p "$EMULATOR_PORT"
  fi
  wait_http "$ENDPOINT/moto-api/" "moto" 60 >/dev/null
  check_alive moto

  # 2. tables and queues
  local booted queue_url pool_id client_id username password
  booted=$(AWS_ENDPOINT_URL=$ENDPOINT "$PY" scripts/local_aws.py bootstrap --endpoint "$ENDPOINT")
  queue_url=$(sed -n 's/^WORK_QUEUE_URL=//p' <<<"$booted")
  pool_id=$(sed -n 's/^COGNITO_USER_POOL_ID=//p' <<<"$booted")
  client_id=$(sed -n 's/^COGNITO_CLIENT_ID=//p' <<<"$booted")
  username=$(sed -n 's/^CCKM_USERNAME=//p' <<<"$booted")
  password=$(sed -n 's/^CCKM_PASSWORD=//p' <<<"$booted")
  [[ -n $queue_url ]] || die "bootstrap printed no WORK_QUEUE_URL"
  [[ -n $pool_id && -n $client_id && -n $password ]] || die "bootstrap printed no user pool"

  # 3. the function under cargo lambda watch, environment from .local/function.env (dotenv quoting)
  local q='"' envfile=$LOCAL/function.env
  {
    for kv in "AWS_ENDPOINT_URL=$ENDPOINT" "AWS_REGION=us-east-1" "AWS_DEFAULT_REGION=us-east-1" \
      "AWS_ACCESS_KEY_ID=testing" "AWS_SECRET_ACCESS_KEY=testing" \
      "KMS_TABLE=${KMS_TABLE:-cckm-kms}" "JOBS_TABLE=${JOBS_TABLE:-cckm-jobs}" "KEYS_TABLE=${KEYS_TABLE:-cckm-keys}" \
      "WORK_QUEUE_URL=$queue_url" "JWT_HS256_SECRET=${JWT_HS256_SECRET:-local-dev-secret-change-me}" \
      "COGNITO_USER_POOL_ID=$pool_id" "COGNITO_CLIENT_ID=$client_id" \
      "SCHEDULER_TARGET_ARN=arn:aws:lambda:us-east-1:123456789012:function:$FUNCTION" \
      "SCHEDULER_ROLE_ARN=arn:aws:iam::123456789012:role/cckm-aws-sync-scheduler" \
      "RUST_LOG=${RUST_LOG:-info}"; do
      local v=${kv#*=} ; v=${v//\\/\\\\}; v=${v//$q/\\$q}
      printf '%s="%s"\n' "${kv%%=*}" "$v"
    done
  } >"$envfile"
  chmod 600 "$envfile"
  local name port concurrency
  for name in api worker; do
    if [[ $name == api ]]; then port=$API_PORT concurrency=$API_CONCURRENCY; else port=$WORKER_PORT concurrency=$WORKER_CONCURRENCY; fi
    if alive "watch-$name"; then
      say "cargo lambda watch ($name) already running (pid $(cat "$LOCAL/watch-$name.pid")); it keeps the environment it started with"
      continue
    fi
    port_busy "$port" && die "port $port is taken by another program (set ${name^^}_PORT=...)"
    if [[ $name == api ]]; then
      say "building $FUNCTION (cargo build) ..."
      cargo build --bin "$FUNCTION" >&2
    fi
    # Only function.env decides what the function sees: our own AWS_*, the secret and RUST_LOG stay out of
    # cargo-lambda's environment, and it logs at its own level (at `info` for every crate it would print
    # the whole environment of each instance it starts).
    start "watch-$name" env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u JWT_HS256_SECRET RUST_LOG=cargo_lambda=info \
      PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$port" \
      --concurrency "$concurrency" --env-file "$envfile"
  done
  # A function-URL request without a token: any answer (401 expected) means the function is up.
  local status
  status=$(wait_http "$API_BASE/lambda-url/$FUNCTION/api/v1/cckm/aws/kms" "cargo lambda watch" "$READY_TIMEOUT")
  check_alive watch-api
  check_alive watch-worker
  say "function answered HTTP $status to an unauthenticated probe"

  # 4. SQS pump
  if alive pump; then
    say "sqs pump already running (pid $(cat $LOCAL/pump.pid))"
  else
    start pump env WORK_QUEUE_URL="$queue_url" AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=us-east-1 \
      AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing WORKER_PORT="$WORKER_PORT" FUNCTION_NAME="$FUNCTION" \
      "$PY" -u scripts/sqs_pump.py --pollers "$WORKER_CONCURRENCY"
  fi

  local token
  token=$("$PY" scripts/local_aws.py token --secret "${JWT_HS256_SECRET:-local-dev-secret-change-me}" --ttl-seconds 86400)
  # KMS resources "demo" (this account) and "demo-b" (through AssumeRole), so a sync can start at once.
  API_URL="$API_BASE/lambda-url/$FUNCTION" TOKEN="$token" "$PY" scripts/demo.py --register-only --env-file /dev/null >&2
  {
    echo "API_URL=$API_BASE/lambda-url/$FUNCTION"
    echo "AWS_ENDPOINT_URL=$ENDPOINT"
    echo "TOKEN=$token"
    echo "CCKM_USERNAME=$username"
    echo "CCKM_PASSWORD=$password"
  } | tee "$LOCAL/env"
  chmod 600 "$LOCAL/env"
}

down() {
  stop pump
  stop watch-api
  stop watch-worker
  stop watch # a stack started before the API and the worker had instances of their own
  stop moto
  rm -f "$LOCAL/env"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
