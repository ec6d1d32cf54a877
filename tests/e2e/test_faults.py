"""Faults on the local stack, each ending with no key lost, no key falsely flagged gone and the job ended
as it should: the worker instance killed in the middle of a unit (its message comes back and another
delivery takes the unit over once the dead one's claim lapses); a poison message (one no worker can read)
that ends in the dead-letter queue while the rest of its batch is done; and, against the KMS simulator
(bench/kms-sim, deterministic keys, a request quota per operation), a throttling storm and the KMS
endpoint going down and coming back in the middle of a unit. For those a third function instance reaches
KMS at the simulator (`AWS_ENDPOINT_URL_KMS`) and everything else at moto."""

import concurrent.futures
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CARGO_LAMBDA, FUNCTION_ENV, REPO, free_port, spawn, stop, wait_port
from stack_client import (OWN_ACCOUNT, aws, deliver, http, job, receive_all, register, run_queue, seed_keys,
                          settle)

EVENTS = Path(__file__).resolve().parents[2] / "events"

KEYS = 600


def test_a_worker_killed_mid_unit_loses_no_key_and_flags_none_gone(fresh_stack):
    keys = seed_keys(fresh_stack, "us-east-1", KEYS)
    register(fresh_stack, ["us-east-1"])
    status, first = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, first
    run_queue(fresh_stack)
    assert job(fresh_stack, first["id"])["progress"]["keys_synced"] == KEYS

    status, second = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, second
    [message] = receive_all(fresh_stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        delivery = pool.submit(deliver, fresh_stack, [message])
        time.sleep(1.5)
        assert not delivery.done(), "the unit ended before the kill: nothing was tested"
        fresh_stack.kill_worker()
        assert delivery.exception() is not None, "the killed invocation answered"
    fresh_stack.start_worker()
    # SQS sends the message again once its visibility timeout ends; the dead delivery's claim lapses first.
    settle(fresh_stack, [message], {message["MessageId"]})
    time.sleep(6)
    run_queue(fresh_stack)

    ended = job(fresh_stack, second["id"])
    assert ended["overall_status"] == "completed", ended
    assert ended["progress"]["keys_synced"] == KEYS and ended["progress"]["keys_gone"] == 0, ended
    status, listed = http(fresh_stack, "GET", "/api/v1/cckm/aws/keys?limit=-1")
    assert status == 200 and listed["total"] == KEYS, listed["total"]
    assert not [k for k in listed["resources"] if k["gone"]], "a live key was flagged gone"
    assert sorted(k["aws_param"]["KeyID"] for k in listed["resources"]) == sorted(keys)


def test_a_unit_whose_every_delivery_dies_ends_in_the_dead_letter_queue_and_is_reported_failed(fresh_stack):
    seed_keys(fresh_stack, "us-east-1", 2)
    register(fresh_stack, ["us-east-1"])
    status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    sqs, queue = aws(fresh_stack, "sqs"), fresh_stack.env["WORK_QUEUE_URL"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    dead_letters = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[1])["QueueUrl"]
    # Every invocation that takes the message dies before it answers: to SQS, a receive and no delete.
    for _ in range(int(redrive["maxReceiveCount"]) + 2):
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert receive_all(fresh_stack) == []
    [dead] = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead["Body"])["job_id"] == started["id"]
    assert job(fresh_stack, started["id"])["overall_status"] == "in_progress"
    # Once the unit's lease lapses (SYNC_LEASE_SECONDS=20 here), the next scheduled run ends the job first.
    time.sleep(21)
    code, answer, stderr = fresh_stack.invoke(EVENTS / "eventbridge-scheduled-event.json")
    assert code == 0 and answer["started"] is True, f"{answer} {stderr[-1500:]}"
    ended = job(fresh_stack, started["id"])
    assert ended["overall_status"] == "failed", ended
    assert ended["detailed_status"] == {
        f"{OWN_ACCOUNT}/us-east-1": "region synchronization failed: no progress within the lease: the unit's "
                                   "worker was lost"}, ended


def test_a_poison_message_ends_in_the_dead_letter_queue_and_the_rest_of_its_batch_is_done(fresh_stack):
    seed_keys(fresh_stack, "us-east-1", 3)
    register(fresh_stack, ["us-east-1"])
    status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    sqs, queue = aws(fresh_stack, "sqs"), fresh_stack.env["WORK_QUEUE_URL"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"job_id": started["id"], "kms_id": 7}))
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    dead_letters = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[1])["QueueUrl"]
    # Each round is one receive; the poison message fails every time, until the queue gives up on it.
    for _ in range(int(redrive["maxReceiveCount"]) + 2):
        messages = receive_all(fresh_stack)
        if not messages:
            break
        settle(fresh_stack, messages, deliver(fresh_stack, messages))
    assert receive_all(fresh_stack) == []
    poisoned = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in poisoned] == [json.dumps({"job_id": started["id"], "kms_id": 7})]
    ended = job(fresh_stack, started["id"])
    assert ended["overall_status"] == "completed" and ended["progress"]["keys_synced"] == 3, ended


class Simulator:
    """kms-sim on a free port, which can be stopped and started again with the same keys."""

    def __init__(self, logs, args):
        self.port, self.log, self.args, self.proc = free_port(), logs / "kms-sim.log", args, None

    def start(self):
        self.proc = spawn([REPO / "target" / "debug" / "kms-sim", "--port", self.port, "--account", OWN_ACCOUNT,
                           *self.args], self.log, append=True)
        wait_port(self.port, self.proc, self.log, 30)

    def stop(self):
        stop(self.proc)

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as answer:
            return json.loads(answer.read())


@pytest.fixture
def simulated(fresh_stack):
    """A function instance whose KMS is a simulator: `(simulator, port of the instance)`; the simulator is
    made with `simulated.start(args)`."""
    build = subprocess.run(["cargo", "build", "-p", "kms-sim"], cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    made = {}

    def start(args):
        sim = Simulator(fresh_stack.logs, args)
        sim.start()
        env_file = fresh_stack.logs / "function-sim.env"
        env_file.touch(mode=0o600)
        names = [*FUNCTION_ENV, "AWS_ENDPOINT_URL_KMS"]
        env = dict(fresh_stack.env, AWS_ENDPOINT_URL_KMS=f"http://127.0.0.1:{sim.port}")
        env_file.write_text("".join(f'{name}="{env[name]}"\n' for name in names))
        port, log = free_port(), fresh_stack.logs / "watch-sim-worker.log"
        watch_env = {k: v for k, v in env.items() if k not in names}
        watch_env["RUST_LOG"] = "cargo_lambda=info"
        made["watch"] = spawn([CARGO_LAMBDA, "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", port,
                               "--concurrency", "2", "--env-file", env_file], log, watch_env, append=True)
        wait_port(port, made["watch"], log, 120)
        made["sim"] = sim
        return sim, port

    yield start
    if "watch" in made:
        stop(made["watch"])
    if "sim" in made:
        made["sim"].stop()


def sync_on(stack, port):
    """A job over the registered KMS resource, run to its end on the instance at `port`."""
    status, started = http(stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    run_queue(stack, rounds=200, port=port)
    return job(stack, started["id"])


def all_keys(stack):
    status, listed = http(stack, "GET", "/api/v1/cckm/aws/keys?limit=-1")
    assert status == 200
    return listed["resources"]


def test_a_throttling_storm_loses_no_key(fresh_stack, simulated):
    # The engine allows itself half of today's quotas (1,000 DescribeKey a second); the simulator takes 5.
    storm = [arg for op in ("DescribeKey", "ListResourceTags", "GetKeyRotationStatus", "GetKeyPolicy",
                            "ListAliases", "ListKeys") for arg in ("--quota", f"{op}=5")]
    sim, port = simulated(["--keys", "60", "--latency-ms", "2", *storm])
    register(fresh_stack, ["us-east-1"])
    ended = sync_on(fresh_stack, port)
    assert ended["overall_status"] == "completed", ended
    assert ended["progress"]["keys_synced"] == 60 and ended["progress"]["keys_gone"] == 0, ended
    keys = all_keys(fresh_stack)
    assert len(keys) == 60 and not [k for k in keys if k["gone"] or k["sync_errors"]], keys[:2]
    throttles = sum(sim.stats()["throttles"].values())
    print(f"throttling storm: {throttles} calls throttled, 60 of 60 keys synced")
    assert throttles >= 10, sim.stats()


def test_the_kms_endpoint_going_down_mid_unit_loses_no_key_and_flags_none_gone(fresh_stack, simulated):
    sim, port = simulated(["--keys", "400", "--latency-ms", "5"])
    register(fresh_stack, ["us-east-1"])
    first = sync_on(fresh_stack, port)
    assert first["progress"]["keys_synced"] == 400, first

    status, second = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, second
    [message] = receive_all(fresh_stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        delivery = pool.submit(deliver, fresh_stack, [message], port)
        time.sleep(1.0)
        assert not delivery.done(), "the unit ended before the outage: nothing was tested"
        sim.stop()
        failed = delivery.result()
    time.sleep(2)
    sim.start()
    settle(fresh_stack, [message], failed)
    run_queue(fresh_stack, rounds=200, port=port)
    ended = job(fresh_stack, second["id"])
    assert ended["overall_status"] == "completed", ended
    assert ended["progress"]["keys_synced"] == 400 and ended["progress"]["keys_gone"] == 0, ended
    keys = all_keys(fresh_stack)
    assert len(keys) == 400 and not [k for k in keys if k["gone"]], "a key lost or falsely flagged gone"


def test_two_deliveries_of_one_unit_at_once_stay_within_the_allowed_kms_rate(fresh_stack, simulated):
    # Today's quotas in the simulator; the engine allows itself half (KMS_RATE_SHARE 0.5).
    sim, port = simulated(["--keys", "1500", "--latency-ms", "2"])
    register(fresh_stack, ["us-east-1"])
    status, started = http(fresh_stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    [message] = receive_all(fresh_stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: deliver(fresh_stack, [message], port), range(2)))
    assert any(not failed for failed in outcomes), outcomes
    settle(fresh_stack, [message], set())
    run_queue(fresh_stack, rounds=200, port=port)
    ended = job(fresh_stack, started["id"])
    assert ended["overall_status"] == "completed" and ended["progress"]["keys_synced"] == 1500, ended
    stats = sim.stats()
    allowed = {operation: quota / 2 for operation, quota in stats["quotas"].items()}
    busiest = stats["busiest_second"]
    print(f"two deliveries at once: busiest second {busiest}, allowed {allowed}")
    assert stats["calls"]["DescribeKey"] >= 1500, stats["calls"]
    # A bucket holds a tenth of a second's worth at most: a second may see that much more.
    over = {op: n for op, n in busiest.items() if n > allowed[op] * 1.1}
    assert not over, f"past the allowed rate: {over} of {allowed}"
