#!/usr/bin/env python3
"""`make demo`: drive a local cckm-aws-sync through one synchronization, with the CCKM API only.

Registers two KMS resources (account 123456789012 directly, 111122223333 through AssumeRole; an answer 409
"already exists" is fine), starts a job over both, polls it until `overall_status` leaves `in_progress`
(timeout 5 min), prints the job and a table of the synced keys. Exits 1 unless the job ends `completed`.
API_URL and TOKEN come from the environment or from --env-file (what `make up` wrote in .local/env).
`--register-only` stops after registering (what `make up` does, so that KMS "demo" exists right away).
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
KMS = [
    {"name": "demo", "account_id": "123456789012", "regions": REGIONS},
    {
        "name": "demo-b",
        "account_id": "111122223333",
        "regions": REGIONS,
        "assume_role_arn": "arn:aws:iam::111122223333:role/cckm-sync",
    },
]


class Api:
    def __init__(self, base, token):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")


def load_env_file(path):
    if path and os.path.exists(path):
        for line in open(path):
            key, sep, value = line.strip().partition("=")
            if sep and key not in os.environ:
                os.environ[key] = value


def table(rows, headers):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*headers))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*row))


def register(api):
    """Registers the demo KMS resources; one that exists already is fine."""
    for kms in KMS:
        status, body = api.call("POST", "/api/v1/cckm/aws/kms", kms)
        if status == 201:
            print(f"registered KMS {kms['name']} (id {body.get('id')})", file=sys.stderr)
        elif status == 409:
            print(f"KMS {kms['name']} already registered", file=sys.stderr)
        else:
            sys.exit(f"demo: registering KMS {kms['name']} answered {status}: {body}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-file", default=".local/env")
    p.add_argument("--register-only", action="store_true", help="register the demo KMS resources, then stop")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    load_env_file(args.env_file)
    if not os.environ.get("API_URL") or not os.environ.get("TOKEN"):
        sys.exit("demo: API_URL and TOKEN are needed (run `make up`)")
    api = Api(os.environ["API_URL"], os.environ["TOKEN"])

    register(api)
    if args.register_only:
        return

    status, job = api.call("POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": [k["name"] for k in KMS]})
    if status != 201:
        sys.exit(f"demo: starting the sync answered {status}: {job}")
    print(f"job {job['id']} started", file=sys.stderr)

    deadline = time.monotonic() + args.timeout
    while job.get("overall_status") == "in_progress":
        if time.monotonic() > deadline:
            print(json.dumps(job, indent=2))
            sys.exit(f"demo: job {job['id']} still in_progress after {args.timeout:.0f}s")
        time.sleep(1)
        status, body = api.call("GET", f"/api/v1/cckm/aws/synchronization-jobs/{job['id']}")
        if status != 200:
            sys.exit(f"demo: reading job {job['id']} answered {status}: {body}")
        job = body
        progress = job.get("progress") or {}
        if progress:
            print(f"  ... {progress.get('units_done')}/{progress.get('units_total')} units, "
                  f"{progress.get('keys_synced')} keys", file=sys.stderr)

    print(json.dumps(job, indent=2))
    status, keys = api.call("GET", "/api/v1/cckm/aws/keys?limit=-1")
    if status != 200:
        sys.exit(f"demo: listing keys answered {status}: {keys}")
    rows = []
    for k in keys.get("resources", []):
        aws = k.get("aws_param") or {}
        rows.append((
            k.get("kms", ""), k.get("region", ""), aws.get("KeyID", ""), aws.get("KeyState", ""),
            aws.get("CustomerMasterKeySpec") or aws.get("KeySpec") or "",
            ",".join(aws.get("Alias") or []), "yes" if k.get("gone") else "",
        ))
    rows.sort()
    print(f"\n{keys.get('total', len(rows))} synced keys:")
    table(rows, ["kms", "region", "KeyID", "KeyState", "key spec", "aliases", "gone"])
    if job.get("overall_status") != "completed":
        sys.exit(f"demo: job ended {job.get('overall_status')}: {json.dumps(job.get('detailed_status'))}")


if __name__ == "__main__":
    main()
