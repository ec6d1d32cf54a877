"""Schemathesis hooks for tests/e2e/test_openapi.py: every refused request must leave the stack's tables as
they were. Before each call that may write (any method but GET: no GET handler writes) the three tables are
read whole (they are small in that test); after a 4xx or 5xx answer they are read again, and any change is
written to $CCKM_WRITES_LOG."""

import hashlib
import json
import os

import boto3
import schemathesis

_before = {}


def _tables():
    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    digest = hashlib.sha256()
    for table in (os.environ["KMS_TABLE"], os.environ["JOBS_TABLE"], os.environ["KEYS_TABLE"]):
        items = []
        for page in client.get_paginator("scan").paginate(TableName=table):
            items.extend(json.dumps(item, sort_keys=True, default=repr) for item in page["Items"])
        digest.update("\n".join(sorted(items)).encode())
    return digest.hexdigest()


@schemathesis.hook
def before_call(context, case, **kwargs):
    _before["state"] = _tables() if case.method.upper() != "GET" else None


@schemathesis.hook
def after_call(context, case, response):
    if _before.get("state") is None:
        return
    if response.status_code >= 400 and _tables() != _before["state"]:
        with open(os.environ["CCKM_WRITES_LOG"], "a") as log:
            log.write(f"{case.method} {case.formatted_path} {response.status_code}: the tables changed\n")


def _reaches_lambda(body):
    """Whether API Gateway would hand this body to the function as text: a body that is not UTF-8 arrives
    base64-encoded, and `cargo lambda watch`'s function URL answers it with a 500 of its own instead."""
    if body is None or isinstance(body, str):
        return True
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops only the failures of cargo-lambda's own 500 (a problem+json body the function never writes) on
    a body that is not UTF-8, and counts them in $CCKM_LOCAL_ONLY_LOG; tests/fuzz.rs sends such bodies to
    the function as API Gateway does (base64), in-process."""
    local_only = (response.status_code == 500 and b"httpstatuses.com" in response.content
                  and not _reaches_lambda(response.request.body))
    if local_only:
        with open(os.environ["CCKM_LOCAL_ONLY_LOG"], "a") as log:
            log.write(f"{case.method} {case.formatted_path}: {type(failure).__name__}\n")
    return not local_only
