#!/usr/bin/env python3
"""Local AWS helpers for cckm-aws-sync, run against the moto emulator (scripts/moto_server.py).

Subcommands:
  bootstrap --endpoint URL   create (idempotently) the DynamoDB tables and SQS queues the function uses;
                             names come from KMS_TABLE, JOBS_TABLE, KEYS_TABLE, WORK_QUEUE_NAME; prints
                             WORK_QUEUE_URL=<url>
  token --secret S           print an HS256 JWT for the API (sub=local-admin)
  seed-demo --endpoint URL   create demo KMS keys in accounts 123456789012 and 111122223333 (via AssumeRole)
                             in us-east-1, eu-west-1 and ap-south-1; skipped where demo keys already exist
Credentials default to testing/testing and the region to us-east-1 (moto's default account 123456789012).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

DEMO_REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
DEMO_ROLE = "arn:aws:iam::111122223333:role/cckm-sync"
DEMO_TAG = {"TagKey": "demo", "TagValue": "cckm"}


def _session(access_key="testing", secret_key="testing", token=None, region="us-east-1"):
    import boto3  # only the AWS subcommands need it

    return boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        region_name=region,
    )


def _default_session(region="us-east-1"):
    return _session(
        os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        os.environ.get("AWS_SESSION_TOKEN"),
        region,
    )


# ------------------------------------------------------------------------------------------ bootstrap
def _table_specs():
    s = lambda name: {"AttributeName": name, "AttributeType": "S"}  # noqa: E731
    hash_ = lambda name: {"AttributeName": name, "KeyType": "HASH"}  # noqa: E731
    range_ = lambda name: {"AttributeName": name, "KeyType": "RANGE"}  # noqa: E731
    return [
        {
            "TableName": os.environ.get("KMS_TABLE", "cckm-kms"),
            "AttributeDefinitions": [s("id")],
            "KeySchema": [hash_("id")],
        },
        {
            "TableName": os.environ.get("JOBS_TABLE", "cckm-jobs"),
            "AttributeDefinitions": [s("pk"), s("sk"), s("list_pk"), s("createdAt")],
            "KeySchema": [hash_("pk"), range_("sk")],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "by_created",
                    "KeySchema": [hash_("list_pk"), range_("createdAt")],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
        {
            "TableName": os.environ.get("KEYS_TABLE", "cckm-keys"),
            "AttributeDefinitions": [
                s(name)
                for name in ("id", "unit", "created", "all_shard", "state_shard", "gone_shard",
                             "region_shard", "keyid", "alias_name")
            ],
            "KeySchema": [hash_("id")],
            # Every index sorted by `created`; see src/adapters/dynamodb/key_index.rs.
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "by_unit",
                    "KeySchema": [hash_("unit"), range_("created")],
                    "Projection": {"ProjectionType": "ALL"},
                },
                *(
                    {
                        "IndexName": name,
                        "KeySchema": [hash_(partition), range_("created")],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                    for name, partition in (("by_created", "all_shard"), ("by_state", "state_shard"),
                                            ("by_gone", "gone_shard"), ("by_region", "region_shard"),
                                            ("by_keyid", "keyid"))
                ),
                {
                    "IndexName": "by_alias",
                    "KeySchema": [hash_("alias_name"), range_("created")],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["key_ref"]},
                },
            ],
        },
    ]


def cmd_bootstrap(args):
    sess = _default_session(args.region)
    ddb = sess.client("dynamodb", endpoint_url=args.endpoint)
    sqs = sess.client("sqs", endpoint_url=args.endpoint)
    existing = set(ddb.list_tables().get("TableNames", []))
    for spec in _table_specs():
        if spec["TableName"] in existing:
            print(f"table {spec['TableName']}: exists", file=sys.stderr)
            continue
        ddb.create_table(BillingMode="PAY_PER_REQUEST", **spec)
        ddb.get_waiter("table_exists").wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1})
        print(f"table {spec['TableName']}: created", file=sys.stderr)

    name = os.environ.get("WORK_QUEUE_NAME", "cckm-sync-work")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": "960",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    }
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:  # exists with other attributes: bring it in line
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    print(f"queue {name}: ready (DLQ {name}-dlq)", file=sys.stderr)
    print(f"WORK_QUEUE_URL={url}")
    _bootstrap_users(sess.client("cognito-idp", endpoint_url=args.endpoint))


ADMIN_GROUP, READ_ONLY_GROUP = "cckm-admins", "cckm-readers"


def _bootstrap_users(cognito):
    """The user pool CCKM's clients sign in to, as template.yaml makes it: an app client for password and
    refresh-token sign-in, the admin and read-only groups, and one admin user with a fresh password."""
    import secrets

    pool_name = os.environ.get("COGNITO_POOL_NAME", "cckm-users")
    pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
    pool_id = next((p["Id"] for p in pools if p["Name"] == pool_name), None)
    if pool_id is None:
        pool_id = cognito.create_user_pool(
            PoolName=pool_name,
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        )["UserPool"]["Id"]
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == "cckm-clients"), None)
    if client_id is None:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="cckm-clients", GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            PreventUserExistenceErrors="ENABLED",
        )["UserPoolClient"]["ClientId"]
    groups = {g["GroupName"] for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]}
    for group in (ADMIN_GROUP, READ_ONLY_GROUP):
        if group not in groups:
            cognito.create_group(UserPoolId=pool_id, GroupName=group)
    username = os.environ.get("CCKM_USERNAME", "cckm-admin")
    password = f"Cckm-{secrets.token_urlsafe(18)}-7x"  # upper, lower, digit and symbol, whatever the draw
    _put_user(cognito, pool_id, username, password, ADMIN_GROUP)
    print(f"user pool {pool_name}: ready ({pool_id}, admin user {username})", file=sys.stderr)
    print(f"COGNITO_USER_POOL_ID={pool_id}")
    print(f"COGNITO_CLIENT_ID={client_id}")
    print(f"CCKM_USERNAME={username}")
    print(f"CCKM_PASSWORD={password}")


def _put_user(cognito, pool_id, username, password, group=None):
    """Creates the user (or finds it), sets its password for good and puts it in `group`."""
    try:
        cognito.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
    except cognito.exceptions.UsernameExistsException:
        pass
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
    if group:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)


# ------------------------------------------------------------------------------------------ token
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(secret, ttl_seconds=3600, issuer=None, audience=None, subject="local-admin", now=None):
    """An HS256 JWT; `now` lets tests make expired or not-yet-valid tokens."""
    now = int(time.time() if now is None else now)
    claims = {"sub": subject, "iat": now, "nbf": now, "exp": now + int(ttl_seconds)}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(sig)}"


def cmd_token(args):
    print(make_token(args.secret, args.ttl_seconds, args.issuer, args.audience))


# ------------------------------------------------------------------------------------------ seed-demo
def _demo_keys(kms):
    """Create the demo set in one region; returns how many keys it made."""
    tags = lambda *extra: [DEMO_TAG, *extra]  # noqa: E731
    made = 0

    def create(**kw):
        nonlocal made
        made += 1
        return kms.create_key(**kw)["KeyMetadata"]

    app = create(Description="demo: app data key", Tags=tags({"TagKey": "env", "TagValue": "prod"},
                                                              {"TagKey": "owner", "TagValue": "team-a"}))
    kms.create_alias(AliasName="alias/demo-app", TargetKeyId=app["KeyId"])
    kms.create_alias(AliasName="alias/demo-app-legacy", TargetKeyId=app["KeyId"])
    kms.enable_key_rotation(KeyId=app["KeyId"])

    plain = create(Description="demo: symmetric, no rotation", Tags=tags())
    kms.create_alias(AliasName="alias/demo-plain", TargetKeyId=plain["KeyId"])

    create(Description="demo: RSA signing", KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Tags=tags())
    create(Description="demo: ECC P-256 signing", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Tags=tags())
    create(Description="demo: HMAC", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Tags=tags())

    disabled = create(Description="demo: disabled", Tags=tags())
    kms.disable_key(KeyId=disabled["KeyId"])

    doomed = create(Description="demo: pending deletion", Tags=tags())
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)

    mrk = create(Description="demo: multi-region primary", MultiRegion=True, Tags=tags())
    kms.create_alias(AliasName="alias/demo-mrk", TargetKeyId=mrk["KeyId"])
    return made


def _has_demo_keys(kms):
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            if DEMO_TAG in tags:
                return True
    return False


def cmd_seed_demo(args):
    base = _default_session()
    sts = base.client("sts", endpoint_url=args.endpoint)
    creds = sts.assume_role(RoleArn=args.role_arn, RoleSessionName="cckm-seed-demo")["Credentials"]
    accounts = [
        (sts.get_caller_identity()["Account"], lambda region: _default_session(region)),
        (
            args.role_arn.split(":")[4],
            lambda region: _session(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], region),
        ),
    ]
    for account, make_session in accounts:
        for region in args.regions:
            kms = make_session(region).client("kms", endpoint_url=args.endpoint)
            if _has_demo_keys(kms):
                print(f"{account}/{region}: demo keys exist, skipped")
                continue
            print(f"{account}/{region}: created {_demo_keys(kms)} keys")


# ------------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("bootstrap", help="create DynamoDB tables and SQS queues")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("token", help="print an HS256 JWT")
    p.add_argument("--secret", required=True)
    p.add_argument("--ttl-seconds", type=int, default=3600)
    p.add_argument("--issuer")
    p.add_argument("--audience")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("seed-demo", help="create demo KMS keys in two accounts and three regions")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--role-arn", default=DEMO_ROLE)
    p.add_argument("--regions", nargs="+", default=DEMO_REGIONS)
    p.set_defaults(func=cmd_seed_demo)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
