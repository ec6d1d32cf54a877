"""Faults on the local stack, each ending with no key lost, no key falsely flagged gone and the job ended
as it should: the worker instance killed in the middle of a unit (its message comes back and another
delivery takes the unit over once the dead one's claim lapses); a unit whose every delivery dies; a poison
message (one no worker can read) that ends in the dead-letter queue while the rest of its batch is done;
every AWS endpoint cut off mid-unit (a relay in front of moto); and, against the KMS simulator
(bench/kms-sim, deterministic keys, a request quota per operation), a throttling storm, the KMS endpoint
going down and coming back in the middle of a unit, and two deliveries of one unit at once within the
allowed rate. Those run on a worker instance of their own, whose environment names the relay or the
simulator."""

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
from tcp_cut import Relay

EVENTS = Path(__file__).resolve().parents[2] / "events"

KEYS = 600


def start_sync(stack):
    """Starts a job over the registered KMS resource; the job."""
    status, started = http(stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["race"]})
    assert status == 201, started
    return started


def dead_letter_queue(stack):
    """The work queue's `maxReceiveCount` and its dead-letter queue's URL."""
    sqs, queue = aws(stack, "sqs"), stack.env["WORK_QUEUE_URL"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    dead_letters = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[1])["QueueUrl"]
    return int(redrive["maxReceiveCount"]), dead_letters


def test_a_worker_killed_mid_unit_loses_no_key_and_flags_none_gone(fresh_stack):
    keys = seed_keys(fresh_stack, "us-east-1", KEYS)
    register(fresh_stack, ["us-east-1"])
    first = start_sync(fresh_stack)
    run_queue(fresh_stack)
    assert job(fresh_stack, first["id"])["progress"]["keys_synced"] == KEYS

    second = start_sync(fresh_stack)
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
    started = start_sync(fresh_stack)
    sqs, queue = aws(fresh_stack, "sqs"), fresh_stack.env["WORK_QUEUE_URL"]
    max_receives, dead_letters = dead_letter_queue(fresh_stack)
    # Every invocation that takes the message dies before it answers: to SQS, a receive and no delete.
    for _ in range(max_receives + 2):
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
    started = start_sync(fresh_stack)
    sqs, queue = aws(fresh_stack, "sqs"), fresh_stack.env["WORK_QUEUE_URL"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"job_id": started["id"], "kms_id": 7}))
    max_receives, dead_letters = dead_letter_queue(fresh_stack)
    # Each round is one receive; the poison message fails every time, until the queue gives up on it.
    for _ in range(max_receives + 2):
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


def start_instance(stack, name, extra_env):
    """A worker instance of its own (2 concurrent invocations) whose environment adds `extra_env`: its
    process, and its port."""
    env_file = stack.logs / f"function-{name}.env"
    env_file.touch(mode=0o600)
    names = [*FUNCTION_ENV, *extra_env]
    env = dict(stack.env, **extra_env)
    env_file.write_text("".join(f'{n}="{env[n]}"\n' for n in names))
    port, log = free_port(), stack.logs / f"watch-{name}.log"
    watch_env = {k: v for k, v in env.items() if k not in names}
    watch_env["RUST_LOG"] = "cargo_lambda=info"
    proc = spawn([CARGO_LAMBDA, "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", port,
                  "--concurrency", "2", "--env-file", env_file], log, watch_env, append=True)
    wait_port(port, proc, log, 120)
    return proc, port


@pytest.fixture
def simulated(fresh_stack):
    """A function instance whose KMS is a simulator: `(simulator, port of the instance)`; the simulator is
    made with `simulated(args)`."""
    build = subprocess.run(["cargo", "build", "-p", "kms-sim"], cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    made = {}

    def start(args):
        made["sim"] = sim = Simulator(fresh_stack.logs, args)
        sim.start()
        made["watch"], port = start_instance(fresh_stack, "sim-worker",
                                             {"AWS_ENDPOINT_URL_KMS": f"http://127.0.0.1:{sim.port}"})
        return sim, port

    yield start
    if "watch" in made:
        stop(made["watch"])
    if "sim" in made:
        made["sim"].stop()


def sync_on(stack, port):
    """A job over the registered KMS resource, run to its end on the instance at `port`."""
    started = start_sync(stack)
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


def survives_an_outage_mid_unit(stack, port, go_down, come_back, keys):
    """Syncs the `keys` keys once on the instance at `port`, then starts a second job; 1 s into its unit,
    `go_down`, 2 s later `come_back`. The job must end with every key and none flagged gone."""
    first = sync_on(stack, port)
    assert first["progress"]["keys_synced"] == keys, first
    second = start_sync(stack)
    [message] = receive_all(stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        delivery = pool.submit(deliver, stack, [message], port)
        time.sleep(1.0)
        assert not delivery.done(), "the unit ended before the outage: nothing was tested"
        go_down()
        time.sleep(2)
        come_back()
        failed = delivery.result()
    settle(stack, [message], failed)
    time.sleep(6)  # the claim of a delivery that lost its answer lapses (SYNC_CLAIM_SECONDS=5 here)
    run_queue(stack, rounds=200, port=port)
    ended = job(stack, second["id"])
    assert ended["overall_status"] == "completed", ended
    assert ended["progress"]["keys_synced"] == keys and ended["progress"]["keys_gone"] == 0, ended
    listed = all_keys(stack)
    assert len(listed) == keys and not [k for k in listed if k["gone"]], "a key lost or falsely flagged gone"


def test_the_kms_endpoint_going_down_mid_unit_loses_no_key_and_flags_none_gone(fresh_stack, simulated):
    sim, port = simulated(["--keys", "400", "--latency-ms", "5"])
    register(fresh_stack, ["us-east-1"])
    survives_an_outage_mid_unit(fresh_stack, port, sim.stop, sim.start, 400)


def test_two_deliveries_of_one_unit_at_once_stay_within_the_allowed_kms_rate(fresh_stack, simulated):
    # Today's quotas in the simulator; the engine allows itself half (KMS_RATE_SHARE 0.5).
    sim, port = simulated(["--keys", "1500", "--latency-ms", "2"])
    register(fresh_stack, ["us-east-1"])
    started = start_sync(fresh_stack)
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


def test_the_emulator_cut_off_mid_unit_loses_no_key_and_flags_none_gone(fresh_stack):
    """Every AWS endpoint (DynamoDB, SQS, STS and KMS: moto) out of reach for 2 s in the middle of a unit,
    then back with its state: a relay in front of moto is cut and restored. (moto itself keeps its state in
    memory only, so a real restart would lose what the run is checked against.)"""
    seed_keys(fresh_stack, "us-east-1", 400)
    register(fresh_stack, ["us-east-1"])
    relay = Relay(int(fresh_stack.endpoint.rsplit(":", 1)[1]))
    relay.start()
    proc, port = start_instance(fresh_stack, "cut-worker", {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"})
    try:
        survives_an_outage_mid_unit(fresh_stack, port, relay.cut, lambda: relay.start(relay.port), 400)
    finally:
        stop(proc)
        relay.cut()
