"""The delay from a KMS change to the stored key, on the local stack (issue 11). Each round changes a key in
the emulator, then hands the worker instance the CloudTrail event of that change (the sample of `events/`
with this key put in) at its invoke endpoint, as the EventBridge rule invokes the function, and polls the
API until the key shows the change. The figures go to `target/e2e/kms-event-delay.txt`.

What this measures is our part: event in, key read from AWS, stored, visible through the API. AWS's own part
(CloudTrail to EventBridge, then EventBridge to Lambda) has no documented bound and is not in it.
"""

import json
import statistics
import time
import urllib.request
import uuid
from pathlib import Path

from stack_client import OWN_ACCOUNT, REPO, aws, http, register

ROUNDS = 20
SAMPLE_KEY = "0b5c7e3a-7f41-4d2a-9c61-5e8f2d4a1b90"
SAMPLE_ACCOUNT = "123456789012"


def event_for(name, key_id):
    text = (REPO / "events" / f"cloudtrail-kms-{name}.json").read_text()
    return json.loads(text.replace(SAMPLE_KEY, key_id).replace(SAMPLE_ACCOUNT, OWN_ACCOUNT))


def invoke_worker(stack, event):
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.worker_port}/2015-03-31/functions/cckm-aws-sync/invocations",
        data=json.dumps(event).encode(), method="POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read() or b"null")


def test_a_change_is_stored_within_the_measured_delay(fresh_stack):
    register(fresh_stack, ["us-east-1"])
    kms = aws(fresh_stack, "kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    record = uuid.uuid5(uuid.NAMESPACE_URL, f"arn:aws:kms:us-east-1:{OWN_ACCOUNT}:key/{key_id}")
    answer = invoke_worker(fresh_stack, event_for("CreateKey", key_id))
    assert answer["result"]["stored"] == 1, answer

    delays = []
    for n in range(ROUNDS):
        name, state = ("DisableKey", "Disabled") if n % 2 == 0 else ("EnableKey", "Enabled")
        started = time.monotonic()
        getattr(kms, "disable_key" if state == "Disabled" else "enable_key")(KeyId=key_id)
        answer = invoke_worker(fresh_stack, event_for(name, key_id))
        assert answer.get("applied") is True, answer
        while True:
            status, key = http(fresh_stack, "GET", f"/api/v1/cckm/aws/keys/{record}")
            assert status == 200, key
            if key["aws_param"]["KeyState"] == state:
                break
            assert time.monotonic() - started < 30, f"round {n}: still {key['aws_param']['KeyState']}"
            time.sleep(0.01)
        delays.append(time.monotonic() - started)

    ms = sorted(d * 1000 for d in delays)
    figures = (f"KMS event to stored key, local stack, {ROUNDS} rounds (change in the emulator, event to the "
               f"worker instance, key polled through the API): median {statistics.median(ms):.0f} ms, "
               f"p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms\n")
    out = REPO / "target" / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kms-event-delay.txt").write_text(figures)
    print(figures)
