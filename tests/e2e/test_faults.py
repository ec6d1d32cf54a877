"""Faults on the local stack, each ending with no key lost, no key falsely flagged gone and the job ended
as it should: the worker instance killed in the middle of a unit (its message comes back and another
delivery takes the unit over once the dead one's claim lapses), and a poison message (one no worker can
read) that ends in the dead-letter queue while the rest of its batch is done."""

import concurrent.futures
import json
import time

from stack_client import aws, deliver, http, job, receive_all, register, run_queue, seed_keys, settle

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
