#!/usr/bin/env python3
"""Writes the sample Lambda events in this folder (stdlib only).

The API events carry `authorization: Bearer <HS256 JWT>` signed with the dev secret below
(override with CCKM_DEV_JWT_SECRET to sign for another secret). Run from anywhere:
    python3 events/generate.py
The output is deterministic: running it again without changes rewrites identical files.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
SECRET = os.environ.get("CCKM_DEV_JWT_SECRET", "local-dev-secret-change-me")
CLAIMS = {"sub": "local-admin", "iat": 1700000000, "nbf": 1700000000, "exp": 4102444800}

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "a1b2c3d4e5"
REST_API_ID = "r7s8t9u0v1"
JOB_ID = "afef70ff-311e-46c1-8ead-e1999e8c6d46"
KMS_ID = "5f0c3c2e-9b1d-4c7a-8e51-0d2f6a7b9c31"
TIME_EPOCH_MS = 1732838400000  # 2024-11-29T00:00:00Z
TIME_V2 = "29/Nov/2024:00:00:00 +0000"
USER_AGENT = "curl/8.5.0"
SOURCE_IP = "203.0.113.10"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(claims: dict, secret: str) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


TOKEN = hs256_jwt(CLAIMS, SECRET)


def trace_id(n: int) -> str:
    return f"Root=1-{TIME_EPOCH_MS // 1000 + n:08x}-{hashlib.sha1(str(n).encode()).hexdigest()[:24]}"


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------- HTTP API (payload format 2.0)
def v2(method, path, *, n, query=None, body=None, auth=True):
    """An HTTP API ($default stage) event for route `ANY /api/v1/{proxy+}` or `ANY /v1/{proxy+}`."""
    query = query or []
    raw_query = "&".join(f"{k}={v}" for k, v in query)
    prefix = "/api/v1/" if path.startswith("/api/v1/") else "/v1/"
    route_key = f"ANY {prefix}{{proxy+}}"
    headers = {
        "accept": "application/json",
        "host": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": trace_id(n),
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body.encode()))
    elif method != "GET":
        headers["content-length"] = "0"
    if auth:
        headers["authorization"] = f"Bearer {TOKEN}"
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": dict(sorted(headers.items())),
    }
    if query:
        qsp = {}
        for k, v in query:  # HTTP API joins repeated parameters with commas
            qsp[k] = f"{qsp[k]},{v}" if k in qsp else v
        event["queryStringParameters"] = qsp
    event["pathParameters"] = {"proxy": path[len(prefix):]}
    event["requestContext"] = {
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "domainPrefix": API_ID,
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": SOURCE_IP,
            "userAgent": USER_AGENT,
        },
        "requestId": f"Cj{n:02d}Xf3wIAMEbQ=",
        "routeKey": route_key,
        "stage": "$default",
        "time": TIME_V2,
        "timeEpoch": TIME_EPOCH_MS + n * 1000,
    }
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = False
    return event


# ---------------------------------------------------------------- REST API (payload format 1.0)
def v1(method, path, *, n, query=None, body=None, stage="prod"):
    """A REST API proxy event for resource `/api/v1/{proxy+}`, deployed to stage `stage`.

    As API Gateway sends it: `path` is the resource path without the stage, while
    `requestContext.path` carries the stage prefix (`/prod/api/v1/...`).
    """
    query = query or []
    prefix = "/api/v1/" if path.startswith("/api/v1/") else "/v1/"
    resource = f"{prefix}{{proxy+}}"
    host = f"{REST_API_ID}.execute-api.{REGION}.amazonaws.com"
    headers = {
        "Accept": "application/json",
        "Authorization": f"Bearer {TOKEN}",
        "Host": host,
        "User-Agent": USER_AGENT,
        "X-Amzn-Trace-Id": trace_id(n),
        "X-Forwarded-For": SOURCE_IP,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    qsp, mvqsp = None, None
    if query:
        qsp, mvqsp = {}, {}
        for k, v in query:  # the single-value map keeps the last value
            qsp[k] = v
            mvqsp.setdefault(k, []).append(v)
    request_id = f"c6af9ac6-7b61-11e6-9a41-93e8deadbe{n:02d}"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": qsp,
        "multiValueQueryStringParameters": mvqsp,
        "pathParameters": {"proxy": path[len(prefix):]},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": REST_API_ID,
            "domainName": host,
            "domainPrefix": REST_API_ID,
            "extendedRequestId": f"Bx{n}kEHqoAMF{n}Q=",
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": SOURCE_IP,
                "user": None,
                "userAgent": USER_AGENT,
                "userArn": None,
            },
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": TIME_V2,
            "requestTimeEpoch": TIME_EPOCH_MS + n * 1000,
            "resourceId": "x1y2z3",
            "resourcePath": resource,
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": False,
    }


JOBS = "/api/v1/cckm/aws/synchronization-jobs"
CREATE_JOB_BODY = compact({"kms": ["demo"], "regions": ["us-east-1"]})
LIST_QUERY = [("overall_status", "completed"), ("limit", "5")]

# file name -> (event, statusCode expected against a fresh, empty local stack; None = not HTTP)
EVENTS = {
    "apigw-v1-create-job.json": (v1("POST", JOBS, n=1, body=CREATE_JOB_BODY), 404),
    "apigw-v1-list-jobs.json": (v1("GET", JOBS, n=2, query=LIST_QUERY), 200),
    "apigw-v2-create-job.json": (v2("POST", JOBS, n=3, body=CREATE_JOB_BODY), 404),
    "apigw-v2-create-job-sync-all.json": (
        v2("POST", JOBS, n=4, body=compact({"synchronize_all": True})),
        400,  # nothing is registered on an empty stack: nothing to synchronize
    ),
    "apigw-v2-get-job.json": (v2("GET", f"{JOBS}/{JOB_ID}", n=5), 404),
    "apigw-v2-list-jobs.json": (v2("GET", JOBS, n=6, query=LIST_QUERY), 200),
    "apigw-v2-create-kms.json": (
        v2(
            "POST",
            "/api/v1/cckm/aws/kms",
            n=7,
            body=compact(
                {
                    "name": "demo",
                    "account_id": ACCOUNT,
                    "regions": ["us-east-1", "eu-west-1", "ap-south-1"],
                }
            ),
        ),
        201,
    ),
    "apigw-v2-invalid-body.json": (
        v2("POST", JOBS, n=8, body=compact({"kms": ["demo"], "synchronize_all": True})),
        400,
    ),
    "apigw-v2-unauthorized.json": (v2("GET", JOBS, n=9, auth=False), 401),
    "apigw-v2-list-keys.json": (
        v2("GET", "/api/v1/cckm/aws/keys", n=10, query=[("region", "us-east-1"), ("limit", "20")]),
        200,
    ),
    "apigw-v2-cancel-job.json": (v2("POST", f"{JOBS}/{JOB_ID}/cancel", n=11), 404),
}

# ---------------------------------------------------------------- EventBridge, Scheduler, SQS
EVENTS["eventbridge-scheduled-event.json"] = (
    {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2024-11-29T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/cckm-aws-sync-sync-all"],
        "detail": {},
    },
    None,
)
EVENTS["scheduler-input.json"] = (
    {"cckm_synchronization_params": {"cloud_name": "aws", "kms": ["demo"], "synchronize_all": False}},
    None,
)


def sqs_record(n, body):
    return {
        "messageId": f"0c7b4d5e-1f2a-4b3c-8d9e-0a1b2c3d4e5{n}",
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{n}RkZ0Xzv0u0Hzv2n4Ja5tI4kQ==",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(TIME_EPOCH_MS + n),
            "SenderId": "AROAXXXXXXXXXXXXXXXXX:cckm-aws-sync-ApiFunction-AbCdEfGh1234",
            "ApproximateFirstReceiveTimestamp": str(TIME_EPOCH_MS + 50 + n),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:cckm-sync-work",
        "awsRegion": REGION,
    }


def work_item(region):
    return compact(
        {"job_id": JOB_ID, "kms_id": KMS_ID, "account_id": ACCOUNT, "region": region, "marker": None}
    )


EVENTS["sqs-work-batch.json"] = (
    {"Records": [sqs_record(1, work_item("us-east-1")), sqs_record(2, work_item("eu-west-1"))]},
    None,
)



# ---------------------------------------------------------------- CloudTrail KMS events (EventBridge rule)
# One per followed event name. The tests put their own key, account and region in place of KEY_ID, MRK_ID,
# ACCOUNT and REGION, so keep these values unique in the text.
KEY_ID = "0b5c7e3a-7f41-4d2a-9c61-5e8f2d4a1b90"
MRK_ID = "mrk-4f1e2d3c4b5a69788796a5b4c3d2e1f0"
REPLICA_REGION = "eu-west-1"
ALIAS = "alias/cckm-sample-app"


def kms_arn(key_id, region=REGION):
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"


def kms_event(n, name, *, key_id=KEY_ID, request=None, response=None, resources=None, service_event=False):
    """An EventBridge "AWS API Call via CloudTrail" event as CloudTrail writes it for KMS."""
    key_resource = {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": kms_arn(key_id)}
    event_time = f"2024-11-29T00:{n:02d}:00Z"
    detail = {
        "eventVersion": "1.09" if not service_event else "1.08",
        "userIdentity": (
            {"accountId": ACCOUNT, "invokedBy": "kms.amazonaws.com"}
            if service_event
            else {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLEID:alice",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/KeyAdmin/alice",
                "accountId": ACCOUNT,
                "accessKeyId": "ASIAEXAMPLEKEYID",
            }
        ),
        "eventTime": event_time,
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "kms.amazonaws.com" if service_event else SOURCE_IP,
        "userAgent": "kms.amazonaws.com" if service_event else "aws-cli/2.15.0",
        "requestParameters": request,
        "responseElements": response,
        "requestID": hashlib.sha1(f"request-{n}".encode()).hexdigest()[:32],
        "eventID": hashlib.sha1(f"event-{n}".encode()).hexdigest()[:32],
        "readOnly": False,
        "resources": [key_resource] if resources is None else resources,
        "eventType": "AwsServiceEvent" if service_event else "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    return {
        "version": "0",
        "id": hashlib.sha1(f"envelope-{n}".encode()).hexdigest()[:32],
        "detail-type": "AWS Service Event via CloudTrail" if service_event else "AWS API Call via CloudTrail",
        "source": "aws.kms",
        "account": ACCOUNT,
        "time": event_time,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def key_metadata(key_id, region=REGION, **extra):
    return {
        "aWSAccountId": ACCOUNT,
        "keyId": key_id,
        "arn": kms_arn(key_id, region),
        "creationDate": "Nov 29, 2024, 12:00:00 AM",
        "enabled": True,
        "description": "",
        "keyUsage": "ENCRYPT_DECRYPT",
        "keyState": "Enabled",
        "origin": "AWS_KMS",
        "keyManager": "CUSTOMER",
        "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "keySpec": "SYMMETRIC_DEFAULT",
        "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        **extra,
    }


ALIAS_RESOURCE = {"accountId": ACCOUNT, "type": "AWS::KMS::Alias", "ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:{ALIAS}"}
KEY_RESOURCE = {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": kms_arn(KEY_ID)}
KMS_EVENTS = [
    ("CreateKey", dict(
        request={"keyUsage": "ENCRYPT_DECRYPT", "keySpec": "SYMMETRIC_DEFAULT", "origin": "AWS_KMS",
                 "multiRegion": False, "bypassPolicyLockoutSafetyCheck": False},
        response={"keyMetadata": key_metadata(KEY_ID, multiRegion=False)})),
    ("ScheduleKeyDeletion", dict(
        request={"keyId": KEY_ID, "pendingWindowInDays": 7},
        response={"keyId": kms_arn(KEY_ID), "deletionDate": "Dec 6, 2024, 12:00:00 AM",
                  "keyState": "PendingDeletion", "pendingWindowInDays": 7})),
    ("CancelKeyDeletion", dict(request={"keyId": KEY_ID}, response={"keyId": kms_arn(KEY_ID)})),
    ("EnableKey", dict(request={"keyId": KEY_ID})),
    ("DisableKey", dict(request={"keyId": KEY_ID})),
    ("TagResource", dict(request={"keyId": KEY_ID, "tags": [{"tagKey": "team", "tagValue": "payments"}]})),
    ("UntagResource", dict(request={"keyId": KEY_ID, "tagKeys": ["team"]})),
    ("CreateAlias", dict(request={"aliasName": ALIAS, "targetKeyId": KEY_ID},
                         resources=[ALIAS_RESOURCE, KEY_RESOURCE])),
    # The key the alias leaves is in no field: only the stored records know it.
    ("UpdateAlias", dict(request={"aliasName": ALIAS, "targetKeyId": KEY_ID},
                         resources=[ALIAS_RESOURCE, KEY_RESOURCE])),
    ("DeleteAlias", dict(request={"aliasName": ALIAS}, resources=[ALIAS_RESOURCE])),
    ("EnableKeyRotation", dict(request={"keyId": KEY_ID, "rotationPeriodInDays": 180})),
    ("DisableKeyRotation", dict(request={"keyId": KEY_ID})),
    ("RotateKeyOnDemand", dict(request={"keyId": KEY_ID}, response={"keyId": KEY_ID})),
    ("PutKeyPolicy", dict(request={"keyId": KEY_ID, "policyName": "default",
                                   "policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
                                   "bypassPolicyLockoutSafetyCheck": False})),
    ("ReplicateKey", dict(
        key_id=MRK_ID,
        request={"keyId": MRK_ID, "replicaRegion": REPLICA_REGION, "bypassPolicyLockoutSafetyCheck": False},
        response={"replicaKeyMetadata": key_metadata(MRK_ID, REPLICA_REGION, multiRegion=True)})),
    ("ImportKeyMaterial", dict(request={"keyId": KEY_ID, "validTo": "Jan 1, 2030, 12:00:00 AM",
                                        "expirationModel": "KEY_MATERIAL_EXPIRES"})),
    ("DeleteImportedKeyMaterial", dict(request={"keyId": KEY_ID})),
    ("UpdateKeyDescription", dict(request={"keyId": KEY_ID, "description": "payments data key"})),
    ("UpdatePrimaryRegion", dict(key_id=MRK_ID, request={"keyId": MRK_ID, "primaryRegion": REPLICA_REGION})),
    # AWS's own event when a key's deletion window ends.
    ("DeleteKey", dict(service_event=True)),
]
for n, (name, fields) in enumerate(KMS_EVENTS, start=20):
    EVENTS[f"cloudtrail-kms-{name}.json"] = (kms_event(n, name, **fields), None)


def main():
    for name, (event, _) in EVENTS.items():
        (HERE / name).write_text(json.dumps(event, indent=2) + "\n")
    expectations = {name: status for name, (_, status) in sorted(EVENTS.items())}
    (HERE / "expectations.json").write_text(json.dumps(expectations, indent=2) + "\n")
    print(f"wrote {len(EVENTS)} events and expectations.json to {HERE}")


if __name__ == "__main__":
    main()
