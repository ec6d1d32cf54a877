#!/usr/bin/env python3
"""Local stand-in for Lambda's SQS event-source mapping (used by `make up`).

Long-polls the work queue (up to 10 messages, 1 s wait), hands each batch to the function as a real Lambda
SQS event through the Lambda invoke endpoint of `cargo lambda watch`, and deletes only the messages that the
function did not report in `batchItemFailures` (ReportBatchItemFailures semantics). `--pollers N` (default 4)
polls and invokes N batches at once, as the event-source mapping does, so that the worker's instances run
concurrent invocations. As in AWS, a batch whose
invocation errors or whose answer cannot be read counts as failed whole. Failed messages are left on the
queue and come back when their visibility timeout ends; `--failed-visibility N` shortens that to N seconds
so that local retries do not wait the queue's 960 s (default 10; -1 keeps the queue's timeout).
One log line per batch. SIGTERM or SIGINT stops it after the current batch.

Configuration (flags override env): WORK_QUEUE_URL, AWS_ENDPOINT_URL, AWS_REGION (default us-east-1),
INVOKE_URL (default http://127.0.0.1:$WORKER_PORT/2015-03-31/functions/$FUNCTION_NAME/invocations,
WORKER_PORT 9001, FUNCTION_NAME cckm-aws-sync).
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

_stop = False


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} sqs-pump: {msg}", file=sys.stderr, flush=True)


def _on_signal(signum, _frame):
    global _stop
    if _stop:  # second signal: leave now
        sys.exit(0)
    _stop = True


def _lambda_message_attributes(attrs):
    out = {}
    for name, value in (attrs or {}).items():
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        if isinstance(out[name]["binaryValue"], bytes):
            import base64

            out[name]["binaryValue"] = base64.b64encode(out[name]["binaryValue"]).decode()
    return out


def build_event(messages, queue_arn, region):
    """The event Lambda's SQS event-source mapping sends for one batch."""
    records = []
    for m in messages:
        a = m.get("Attributes", {})
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": a.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": a.get("SentTimestamp", str(int(time.time() * 1000))),
                    "SenderId": a.get("SenderId", "AIDAEXAMPLE"),
                    "ApproximateFirstReceiveTimestamp": a.get(
                        "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                    ),
                },
                "messageAttributes": _lambda_message_attributes(m.get("MessageAttributes")),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_ids(answer_bytes, message_ids):
    """Message ids to keep, from the function's answer (the whole batch if the answer is unusable)."""
    everything = set(message_ids)
    try:
        answer = json.loads(answer_bytes or b"null")
    except ValueError:
        return everything, "answer is not JSON"
    if answer is None:
        return set(), None
    if not isinstance(answer, dict):
        return everything, "answer is not an object"
    if "errorType" in answer or "errorMessage" in answer:
        return everything, f"function error {answer.get('errorType')}: {answer.get('errorMessage')}"
    failures = answer.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return everything, "batchItemFailures is not a list"
    ids = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in everything:  # AWS fails the whole batch on a bad identifier
            return everything, f"bad itemIdentifier {ident!r}"
        ids.add(ident)
    return ids, None


def invoke(url, event, timeout):
    req = urllib.request.Request(
        url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def pump_once(sqs, args, queue_arn):
    got = sqs.receive_message(
        QueueUrl=args.queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not got:
        return 0
    started = time.monotonic()
    ids = [m["MessageId"] for m in got]
    try:
        status, body = invoke(args.invoke_url, build_event(got, queue_arn, args.region), args.invoke_timeout)
        if status >= 300:
            keep, why = set(ids), f"invoke HTTP {status}: {body[:200]!r}"
        else:
            keep, why = failed_ids(body, ids)
    except (OSError, urllib.error.URLError) as err:
        keep, why = set(ids), f"invoke failed: {err}"
    done = [m for m in got if m["MessageId"] not in keep]
    if done:
        sqs.delete_message_batch(
            QueueUrl=args.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    kept = [m for m in got if m["MessageId"] in keep]
    if kept and args.failed_visibility >= 0:
        sqs.change_message_visibility_batch(
            QueueUrl=args.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": args.failed_visibility}
                for i, m in enumerate(kept)
            ],
        )
    ms = int((time.monotonic() - started) * 1000)
    line = f"batch of {len(got)}: {len(done)} done, {len(kept)} failed in {ms} ms"
    if kept:
        line += f" (failed: {', '.join(sorted(keep))})"
    if why:
        line += f"; {why}"
    log(line)
    return len(got)


def poll(sqs, args):
    """One poller: a batch at a time until stopped."""
    queue_arn = None
    while not _stop:
        try:
            if queue_arn is None:
                queue_arn = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
            pump_once(sqs, args, queue_arn)
        except Exception as err:  # emulator restarting, queue not there yet: keep going
            log(f"error: {type(err).__name__}: {err}")
            time.sleep(1)


def main(argv=None):
    port = os.environ.get("WORKER_PORT", "9001")
    fn = os.environ.get("FUNCTION_NAME", "cckm-aws-sync")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue-url", default=os.environ.get("WORK_QUEUE_URL"))
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.add_argument(
        "--invoke-url",
        default=os.environ.get("INVOKE_URL", f"http://127.0.0.1:{port}/2015-03-31/functions/{fn}/invocations"),
    )
    p.add_argument("--invoke-timeout", type=float, default=960.0)
    p.add_argument("--failed-visibility", type=int, default=10)
    p.add_argument("--pollers", type=int, default=4, help="batches polled and invoked at once")
    args = p.parse_args(argv)
    if not args.queue_url:
        p.error("--queue-url or WORK_QUEUE_URL is required")

    import boto3

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sqs = boto3.client(
        "sqs",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    log(f"polling {args.queue_url} -> {args.invoke_url} with {args.pollers} pollers")
    pollers = [threading.Thread(target=poll, args=(sqs, args), daemon=True) for _ in range(args.pollers)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    log("stopped")


if __name__ == "__main__":
    main()
