"""Races with real concurrency, on the local stack shaped like the template (an API instance running 8
invocations at once, a worker instance running 4): 200 creates over overlapping units at once start one job;
two deliveries of one unit at once count each key once; a cancel racing the units' ends leaves one
consistent end state. Then the logs of these runs are searched for tokens, the secret and key policies.
Requests go over HTTP to the function URL and the worker's invoke endpoint, as API Gateway and the SQS
trigger send them.
"""

import collections
import concurrent.futures
from pathlib import Path

from stack_client import TOKENS_SENT, deliver, http, job, receive_all, register, run_queue, seed_keys, settle, token

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]


def test_200_concurrent_creates_over_overlapping_units_start_exactly_one_job(fresh_stack):
    register(fresh_stack, REGIONS)
    # Every two of these overlap: they all cover eu-west-1.
    bodies = [{"kms": ["race"]}, {"kms": ["race"], "regions": ["us-east-1", "eu-west-1"]},
              {"kms": ["race"], "regions": ["eu-west-1", "ap-south-1"]}, {"synchronize_all": True}]
    requests = [bodies[n % len(bodies)] for n in range(200)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(
            lambda body: http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", body), requests))
    statuses = collections.Counter(status for status, _ in answers)
    assert statuses[201] == 1, statuses
    assert statuses[409] == 199, statuses
    refused = [body for status, body in answers if status == 409]
    assert all(body["code"] == 4 for body in refused), refused[:3]
    status, jobs = http(fresh_stack, "GET", "/api/v1/cckm/aws/synchronization-jobs")
    assert (status, jobs["total"]) == (200, 1), jobs


def test_two_deliveries_of_one_unit_at_once_count_each_key_once(fresh_stack):
    keys = seed_keys(fresh_stack, "us-east-1", 30)
    register(fresh_stack, ["us-east-1"])
    status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    [message] = receive_all(fresh_stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: deliver(fresh_stack, [message]), range(2)))
    # The copy that found the unit claimed by the other comes back; one of the two did the unit.
    assert any(not failed for failed in outcomes), outcomes
    settle(fresh_stack, [message], set())
    run_queue(fresh_stack)
    ended = job(fresh_stack, started["id"])
    assert ended["overall_status"] == "completed", ended
    assert ended["progress"]["keys_synced"] == 30, ended
    status, listed = http(fresh_stack, "GET", "/api/v1/cckm/aws/keys?limit=100")
    assert status == 200 and listed["total"] == 30, listed
    assert sorted(k["aws_param"]["KeyID"] for k in listed["resources"]) == sorted(keys)


def test_a_cancel_racing_the_units_ends_leaves_one_consistent_end_state(fresh_stack):
    for region in REGIONS:
        seed_keys(fresh_stack, region, 5)
    register(fresh_stack, REGIONS)
    ends = collections.Counter()
    for _ in range(4):
        status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
        assert status == 201, started
        messages = receive_all(fresh_stack)
        assert len(messages) == 3
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            units = [pool.submit(deliver, fresh_stack, [message]) for message in messages]
            cancel = pool.submit(http, fresh_stack, "POST",
                                 f"/api/v1/cckm/aws/synchronization-jobs/{started['id']}/cancel")
            cancel_status, cancel_body = cancel.result()
            for message, unit in zip(messages, units):
                settle(fresh_stack, [message], unit.result())
        run_queue(fresh_stack)
        ended = job(fresh_stack, started["id"])
        statuses = set(ended["detailed_status"].values())
        progress = ended["progress"]
        assert ended["overall_status"] == "completed", ended
        assert progress["units_done"] == progress["units_total"] == 3, ended
        assert statuses <= {"region synchronized successfully", "region synchronization canceled"}, ended
        if cancel_status == 200:
            assert ended["abort"] is True, ended
            ends["canceled"] += 1
        else:
            # The cancel came after the job's end: refused, and the job ended as if it had not been asked.
            assert (cancel_status, cancel_body["code"]) == (409, 4), cancel_body
            assert ended["abort"] is False and statuses == {"region synchronized successfully"}, ended
            ends["ended first"] += 1
        assert progress["keys_synced"] <= 15, ended
    print(f"cancel races: {dict(ends)}")


def test_the_logs_of_a_full_run_hold_no_token_no_secret_and_no_key_policy(fresh_stack):
    # A full run of its own (the logs also hold the runs of the tests before it): keys with policies
    # synced, listed with their policies, and a refused request with a bad token.
    seed_keys(fresh_stack, "us-east-1", 3)
    register(fresh_stack, ["us-east-1"])
    status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    run_queue(fresh_stack)
    status, listed = http(fresh_stack, "GET", "/api/v1/cckm/aws/keys")
    assert status == 200 and all("Enable IAM User Permissions" in k["aws_param"]["Policy"]
                                 for k in listed["resources"]), listed
    forged = token(fresh_stack)[:-4] + "AAAA"
    TOKENS_SENT.append(forged)
    assert http(fresh_stack, "GET", "/api/v1/cckm/aws/keys", bearer=forged)[0] == 401
    stack = fresh_stack
    logs = {path.name: path.read_text(errors="replace") for path in Path(stack.logs).glob("*.log")}
    assert {"watch-api.log", "watch-worker.log"} <= set(logs), sorted(logs)
    function_lines = sum(text.count('"level"') for text in logs.values())
    assert function_lines > 0, "the function logged nothing: nothing was checked"
    secrets = {"the JWT secret": stack.env["JWT_HS256_SECRET"],
               "a key policy": "Enable IAM User Permissions", "a policy statement": '"Statement"'}
    secrets.update({f"token {n}": t.rsplit(".", 1)[-1] for n, t in enumerate(TOKENS_SENT)})
    for log, text in logs.items():
        if log == "moto.log":
            continue  # the emulator's own log, not ours
        for what, secret in secrets.items():
            assert secret not in text, f"{what} in {log}"
