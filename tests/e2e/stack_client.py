"""What the e2e tests do with the local stack: call the API over HTTP with a fresh token, seed KMS keys in
the emulator, and play the SQS trigger against the worker instance (receive, invoke, delete or send back).
"""

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from local_aws import make_token  # noqa: E402
from sqs_pump import build_event, failed_ids  # noqa: E402

OWN_ACCOUNT = "123456789012"
# Every token these tests send; none may show up in a log.
TOKENS_SENT = []


def token(stack):
    minted = make_token(stack.env["JWT_HS256_SECRET"], ttl_seconds=3600)
    TOKENS_SENT.append(minted)
    return minted


def http(stack, method, path, body=None, bearer=None):
    request = urllib.request.Request(
        stack.api_url + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {bearer or token(stack)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def aws(stack, service):
    return boto3.client(service, endpoint_url=stack.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def seed_keys(stack, region, count):
    kms = boto3.client("kms", endpoint_url=stack.endpoint, region_name=region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(count)]


def register(stack, regions):
    status, kms = http(stack, "POST", "/api/v1/cckm/aws/kms",
                       {"name": "race", "account_id": OWN_ACCOUNT, "regions": regions})
    assert status == 201, kms


def receive_all(stack):
    """Every message waiting on the work queue (received, so hidden from other receivers for 60 s)."""
    sqs, messages = aws(stack, "sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=stack.env["WORK_QUEUE_URL"], MaxNumberOfMessages=10,
                                  WaitTimeSeconds=0, VisibilityTimeout=60, AttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)


def deliver(stack, messages, port=None):
    """One worker invocation with these messages, as the SQS trigger makes it (on the worker instance, or
    on the instance at `port`); the ids it reports failed."""
    queue_arn = aws(stack, "sqs").get_queue_attributes(
        QueueUrl=stack.env["WORK_QUEUE_URL"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port or stack.worker_port}/2015-03-31/functions/cckm-aws-sync/invocations",
        data=json.dumps(build_event(messages, queue_arn, "us-east-1")).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        failed, why = failed_ids(answer.read(), [m["MessageId"] for m in messages])
    assert why is None, why
    return failed


def settle(stack, messages, failed):
    """What the SQS trigger does after an invocation: deletes the messages done, and lets the failed ones
    come back at once (the queue would wait for their visibility timeout)."""
    sqs = aws(stack, "sqs")
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=stack.env["WORK_QUEUE_URL"],
                                          ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=stack.env["WORK_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])


def run_queue(stack, rounds=40, port=None):
    """Plays the SQS trigger until the queue is empty."""
    for _ in range(rounds):
        messages = receive_all(stack)
        if not messages:
            return
        settle(stack, messages, deliver(stack, messages, port))
    raise AssertionError(f"the queue still holds work after {rounds} rounds")


def job(stack, job_id):
    status, body = http(stack, "GET", f"/api/v1/cckm/aws/synchronization-jobs/{job_id}")
    assert status == 200, body
    return body
