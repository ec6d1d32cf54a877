"""CCKM's own clients, replayed against the local stack over HTTP (issue 9): each request as the client's
source builds it (method, path and query encoding, body with its empty strings, headers), then each answer
field the client reads, with the type it reads it as. Each case names the client source behind it:

- Terraform: ThalesGroup/terraform-provider-ciphertrust, branch 1.0.1, `internal/provider/...` (the Go code).
  Bodies are Go structs without `omitempty`: unset fields go out as "", false, null, {} or Go's zero time.
- Ansible: ThalesGroup/CDSP-Orchestration-Ansible, `plugins/module_utils/cm_api.py` (HEAD) and the AWS
  modules and module_utils they call (`cckm_aws.py`, `cckm_commons.py`, `connection_management.py`; the
  modules themselves at 9cefc4d, the last commit that has them). Top-level None values are dropped;
  query strings are glued on unencoded as `/?skip=0&limit=1&<param>=<value>`.

Sign-in goes to the Cognito user pool the stack's bootstrap made (moto serves Cognito); every other
request carries the pool's access token, as the clients do after signing in.
"""

import http.client
import json
import urllib.parse

import boto3
from stack_client import OWN_ACCOUNT, aws, run_queue

# Every password, secret access key and token these tests send: none may show up in a log.
SENT_SECRETS = []

STR, BOOL, INT, LIST, DICT, NULL = str, bool, int, list, dict, type(None)
# A field AWS may not have told us is null; Terraform reads it with gjson, which gives "" for null.
MAYBE_STR = (STR, NULL)


def send(stack, method, path, body=None, headers=()):
    """One request exactly as given: `headers` may repeat a name (Terraform sends Content-Type twice)."""
    base = urllib.parse.urlsplit(stack.api_url)
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=120)
    connection.putrequest(method, base.path + path, skip_accept_encoding=True)
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    for name, value in headers:
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(data or b"")))
    connection.endheaders(data)
    answer = connection.getresponse()
    raw = answer.read()
    connection.close()
    return answer.status, (json.loads(raw) if raw else None)


def reads(where, answer, fields):
    """Each field the client reads is there, with the type it reads it as (a tuple: any of them)."""
    for field, kind in fields.items():
        value = answer
        for part in field.split("."):
            assert isinstance(value, dict) and part in value, f"{where}: no {field} in {answer}"
            value = value[part]
        assert isinstance(value, kind), f"{where}: {field} is {value!r}, not {kind}"


def terraform_headers(jwt):
    # common/client.go doRequest: Authorization and Content-Type on every call.
    return [("Authorization", f"Bearer {jwt}"), ("Content-Type", "application/json")]


def terraform_sign_in(stack):
    # common/client.go NewClient / RefreshToken: {username, password, auth_domain, domain}, every key sent;
    # Content-Type set twice, and `Authorization: Bearer ` with an empty token on the first sign-in.
    username, password = stack.admin
    status, answer = send(stack, "POST", "/api/v1/auth/tokens",
                          {"username": username, "password": password, "auth_domain": "", "domain": ""},
                          [("Content-Type", "application/json"), ("Content-Type", "application/json"),
                           ("Authorization", "Bearer ")])
    assert status == 200, answer
    reads("terraform sign-in", answer, {"jwt": STR})
    SENT_SECRETS.extend([password, answer["jwt"].rsplit(".", 1)[-1], answer["refresh_token"]])
    return answer["jwt"]


def ansible_sign_in(stack):
    # plugins/module_utils/cm_api.py getJwt: grant_type password, auth_domain_path always (localNode requires it).
    username, password = stack.admin
    status, answer = send(stack, "POST", "/api/v1/auth/tokens",
                          {"grant_type": "password", "username": username, "password": password,
                           "auth_domain_path": ""},
                          [("Content-Type", "application/json"), ("Connection", "keep-alive")])
    assert status == 200, answer
    reads("ansible sign-in", answer, {"jwt": STR})
    SENT_SECRETS.extend([password, answer["jwt"].rsplit(".", 1)[-1]])
    return answer["jwt"]


def ansible_headers(jwt):
    # cm_api.py CMAPIObject: no Accept header; this Content-Type exactly.
    return [("Content-Type", "application/json; charset=utf-8"), ("Authorization", f"Bearer {jwt}")]


def tf_connection_body(name, access, secret, role=""):
    # connections/resource_aws_connection.go Create: the whole struct, zero values included.
    return {"uri": "", "account": "", "createdAt": "", "updatedAt": "", "service": "", "category": "",
            "resource_url": "", "last_connection_ok": False, "last_connection_error": "",
            "last_connection_at": "", "Application": {}, "DevAccount": {}, "id": "", "name": name,
            "description": "", "access_key_id": access, "assume_role_arn": role, "assume_role_external_id": "",
            "aws_region": "", "aws_sts_regional_endpoints": "", "cloud_name": "", "is_role_anywhere": False,
            "iam_role_anywhere": None, "labels": {}, "meta": {}, "products": None, "secret_access_key": secret}


COMMON = {"id": STR, "uri": STR, "account": STR, "devAccount": STR, "application": STR, "createdAt": STR,
          "updatedAt": STR}
CONNECTION_READS = {**COMMON, "category": STR, "service": STR, "resource_url": STR,
                    "last_connection_ok": (BOOL, NULL), "last_connection_error": STR,
                    "last_connection_at": (STR, NULL), "name": STR, "description": STR}
KMS_READS = {"account": STR, "account_id": STR, "application": STR, "arn": STR, "auto_added": BOOL,
             "connection": (STR, NULL), "devAccount": STR, "createdAt": STR, "name": STR, "regions": LIST,
             "status": STR, "updatedAt": STR, "uri": STR, "acls": LIST}
KEY_READS = {"deletion_date": (STR, NULL), "labels": DICT, "key_material_origin": STR, "local_key_id": STR,
             "local_key_name": STR, "rotated_at": (STR, NULL), "rotation_status": STR, "rotated_to": STR,
             "synced_at": STR, "kms_id": STR, "kms": STR, "key_source": STR, "key_type": (STR, NULL),
             "cloud_name": STR, "replica_policy": (DICT, NULL), "key_admins": LIST, "key_users": LIST,
             "aws_param.Arn": STR, "aws_param.AWSAccountId": STR, "aws_param.KeyID": STR,
             "aws_param.KeyState": MAYBE_STR, "aws_param.KeyUsage": MAYBE_STR, "aws_param.Origin": MAYBE_STR,
             "aws_param.Enabled": (BOOL, NULL), "aws_param.Description": MAYBE_STR, "aws_param.Policy": MAYBE_STR,
             "aws_param.KeyRotationEnabled": (BOOL, NULL), "aws_param.RotationPeriodInDays": (INT, NULL),
             "aws_param.NextRotationDate": (STR, NULL), "aws_param.EncryptionAlgorithms": LIST,
             "aws_param.ExpirationModel": (STR, NULL), "aws_param.KeyManager": MAYBE_STR,
             "aws_param.ValidTo": (STR, NULL), "aws_param.Alias": LIST, "aws_param.Tags": LIST,
             "aws_param.MultiRegion": (BOOL, NULL), "aws_param.MacAlgorithmSpec": (STR, NULL)}
# data source ciphertrust_aws_key_rotation_list: CCKM's fields, and AWS's under aws_param.
ROTATION_READS = {"account": STR, "createdAt": STR, "id": STR, "key_material_origin": STR, "key_source": STR,
                  "key_source_container_id": STR, "kms_id": STR, "source_key_identifier": STR,
                  "source_key_name": STR, "updatedAt": STR, "uri": STR, "aws_param.KeyId": STR,
                  "aws_param.KeyMaterialId": MAYBE_STR, "aws_param.RotationDate": STR,
                  "aws_param.RotationType": STR, "aws_param.ImportState": MAYBE_STR,
                  "aws_param.KeyMaterialState": MAYBE_STR, "aws_param.ExpirationModel": MAYBE_STR,
                  "aws_param.ValidTo": MAYBE_STR, "aws_param.KeyMaterialDescription": MAYBE_STR}
JOB_CONFIG_READS = {**COMMON, "disabled": BOOL, "description": STR, "run_on": STR, "start_date": (STR, NULL),
                    "end_date": (STR, NULL), "name": STR, "operation": STR, "run_at": STR,
                    "job_config_params.cloud_name": STR, "job_config_params.synchronize_all": BOOL,
                    "job_config_params.kms": LIST}


def test_terraform_connection_kms_key_and_scheduler_operations(fresh_stack):
    stack = fresh_stack
    kms_client = aws(stack, "kms")
    key_id = kms_client.create_key(Tags=[{"TagKey": "env", "TagValue": "prod"}])["KeyMetadata"]["KeyId"]
    kms_client.create_alias(AliasName="alias/tf-app", TargetKeyId=key_id)
    kms_client.rotate_key_on_demand(KeyId=key_id)
    jwt = terraform_sign_in(stack)
    h = terraform_headers(jwt)

    # connections/resource_aws_connection.go: create, read, update (name "" and is_role_anywhere false), delete.
    conn_path = "/api/v1/connectionmgmt/services/aws/connections"
    SENT_SECRETS.append("tf-secret-access-key-value")
    status, conn = send(stack, "POST", conn_path,
                        tf_connection_body("tf-conn", "AKIAEXAMPLE00001", "tf-secret-access-key-value"), h)
    assert status == 201, conn
    reads("connection create", conn, CONNECTION_READS)
    status, conn = send(stack, "GET", f"{conn_path}/{conn['id']}", None, h)
    assert status == 200, conn
    reads("connection read", conn, CONNECTION_READS)
    status, updated = send(stack, "PATCH", f"{conn_path}/{conn['id']}", tf_connection_body("", "", ""), h)
    assert status == 200, updated
    reads("connection update", updated, {"updatedAt": STR})
    # data source ciphertrust_aws_connection_list: filters unencoded, skip=0&limit=-1.
    status, page = send(stack, "GET", f"{conn_path}/?name=tf-conn&skip=0&limit=-1", None, h)
    assert status == 200 and page["total"] == 1, page
    assert "tf-secret-access-key-value" not in json.dumps(page)

    # cckm/aws/resource_aws_kms.go: create with the connection by name and empty role fields; update
    # with account_id and name empty; read; data source ciphertrust_aws_kms_list.
    body = {"account_id": OWN_ACCOUNT, "connection": "tf-conn", "name": "tf-kms", "regions": ["us-east-1"],
            "assume_role_arn": "", "assume_role_external_id": ""}
    status, kms = send(stack, "POST", "/api/v1/cckm/aws/kms", body, h)
    assert status == 201, kms
    reads("kms create", kms, KMS_READS)
    body = {**body, "account_id": "", "name": ""}
    status, kms = send(stack, "PATCH", f"/api/v1/cckm/aws/kms/{kms['id']}", body, h)
    assert status == 200, kms
    status, kms = send(stack, "GET", f"/api/v1/cckm/aws/kms/{kms['id']}", None, h)
    assert status == 200, kms
    reads("kms read", kms, KMS_READS)
    query = urllib.parse.urlencode({"limit": "-1", "name": "tf-kms"})
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/kms/?{query}", None, h)
    assert status == 200 and page["total"] == 1, page
    # The connection is in use now.
    status, refused = send(stack, "DELETE", f"{conn_path}/{conn['id']}", None, h)
    assert status == 409, refused

    # cm/resource_scheduler.go: create (disabled always false, zero dates, the other params null), read,
    # update (name, operation and cloud_name empty), delete; data source ciphertrust_scheduler_list.
    config_body = {"name": "tf-sync", "description": "", "operation": "cckm_synchronization",
                   "run_at": "0 2 * * *", "run_on": "", "disabled": False,
                   "start_date": "0001-01-01T00:00:00Z", "end_date": "0001-01-01T00:00:00Z",
                   "database_backup_params": None, "cckm_key_rotation_params": None,
                   "cckm_synchronization_params": {"cloud_name": "aws", "kms": ["tf-kms"], "oci_vaults": None,
                                                   "synchronize_all": False}}
    status, config = send(stack, "POST", "/api/v1/scheduler/job-configs", config_body, h)
    assert status == 201, config
    status, config = send(stack, "GET", f"/api/v1/scheduler/job-configs/{config['id']}", None, h)
    assert status == 200, config
    reads("scheduler read", config, JOB_CONFIG_READS)
    update = {**config_body, "name": "", "operation": "", "run_at": "30 3 * * *",
              "cckm_synchronization_params": {**config_body["cckm_synchronization_params"], "cloud_name": ""}}
    status, config = send(stack, "PATCH", f"/api/v1/scheduler/job-configs/{config['id']}", update, h)
    assert status == 200, config
    reads("scheduler update", config, JOB_CONFIG_READS)
    status, page = send(stack, "GET", "/api/v1/scheduler/job-configs/?name=tf-sync", None, h)
    assert status == 200 and page["total"] == 1, page
    reads("scheduler list", page["resources"][0], {"cckm_synchronization_params.kms": LIST})
    # A sync, as the schedule starts it, to have keys to read.
    status, job = send(stack, "POST", f"/api/v1/scheduler/job-configs/{config['id']}/run-now", None, h)
    assert status == 201, job
    run_queue(stack)

    # cckm/aws resource ciphertrust_aws_key read: keyid + region, total must be 1.
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys?keyid={key_id}&region=us-east-1", None, h)
    assert status == 200 and page["total"] == 1, page
    key = page["resources"][0]
    reads("key read", key, KEY_READS)
    # data source ciphertrust_aws_key: by id=, by keyid+region, by alias (bare, as in its examples).
    for query in (f"id={key['id']}", f"keyid={key_id}&region=us-east-1", "alias=tf-app&region=us-east-1"):
        status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys?{query}", None, h)
        assert status == 200 and page["total"] == 1, (query, page)
        reads(f"key data source {query}", page["resources"][0], KEY_READS)
    status, one = send(stack, "GET", f"/api/v1/cckm/aws/keys/{key['id']}", None, h)
    assert status == 200, one
    reads("key get", one, KEY_READS)
    # data source ciphertrust_aws_key_rotation_list.
    status, rotations = send(stack, "GET", f"/api/v1/cckm/aws/keys/{key['id']}/rotations", None, h)
    assert status == 200 and rotations["total"] == 1, rotations
    reads("rotations", rotations["resources"][0], ROTATION_READS)
    status, versions = send(stack, "GET", f"/api/v1/cckm/aws/keys/{key['id']}/versions", None, h)
    assert status == 200 and versions["total"] == 2, versions

    status, _ = send(stack, "DELETE", f"/api/v1/scheduler/job-configs/{config['id']}", None, h)
    assert status == 204
    # Destroy, as `terraform destroy` orders it: the KMS resource, then its connection (no longer in use).
    status, _ = send(stack, "DELETE", f"/api/v1/cckm/aws/kms/{kms['id']}", None, h)
    assert status == 204
    status, _ = send(stack, "DELETE", f"{conn_path}/{conn['id']}", None, h)
    assert status == 204


def test_ansible_connection_kms_sync_and_key_filter_operations(fresh_stack):
    stack = fresh_stack
    kms_client = aws(stack, "kms")
    key_id = kms_client.create_key()["KeyMetadata"]["KeyId"]
    kms_client.create_alias(AliasName="alias/ans-app", TargetKeyId=key_id)
    jwt = ansible_sign_in(stack)
    h = ansible_headers(jwt)

    # connection_manager_aws.py create -> connection_management.py createConnection: None dropped,
    # aws_sts_regional_endpoints and cloud_name defaulted; POSTData reads `id`.
    SENT_SECRETS.append("ans-secret-access-key-value")
    body = {"access_key_id": "AKIAANSIBLE00001", "name": "ans-conn", "secret_access_key": "ans-secret-access-key-value",
            "aws_sts_regional_endpoints": "legacy", "cloud_name": "aws"}
    status, conn = send(stack, "POST", "/api/v1/connectionmgmt/services/aws/connections", body, h)
    assert status == 201, conn
    reads("ansible connection create", conn, {"id": STR})
    # patch: the same keys without name.
    patch = {k: v for k, v in body.items() if k != "name"}
    status, conn = send(stack, "PATCH", f"/api/v1/connectionmgmt/services/aws/connections/{conn['id']}", patch, h)
    assert status == 200, conn

    # cckm_aws_kms.py create -> cckm_commons.py addCCKMCloudAsset: {account_id, connection, name, regions}.
    status, kms = send(stack, "POST", "/api/v1/cckm/aws/kms",
                       {"account_id": OWN_ACCOUNT, "connection": "ans-conn", "name": "ans-kms",
                        "regions": ["us-east-1"]}, h)
    assert status == 201, kms
    reads("ansible kms create", kms, {"id": STR})
    # update: {connection, regions} only.
    status, _ = send(stack, "PATCH", f"/api/v1/cckm/aws/kms/{kms['id']}",
                     {"connection": "ans-conn", "regions": ["us-east-1"]}, h)
    assert status == 200

    # cckm_aws_key.py create-sync-job -> createSyncJob: `kms` is the single string param.
    status, job = send(stack, "POST", "/api/v1/cckm/aws/synchronization-jobs",
                       {"kms": "ans-kms", "regions": ["us-east-1"], "synchronize_all": False}, h)
    assert status == 201, job
    reads("ansible sync job", job, {"id": STR})
    run_queue(stack)
    # cancel-sync-job -> POSTWithoutData: no body; the answer is parsed as JSON.
    status, answer = send(stack, "POST", f"/api/v1/cckm/aws/synchronization-jobs/{job['id']}/cancel", None, h)
    assert status in (200, 409) and isinstance(answer, dict), answer

    # Key lookups as cm_api.py GETIdByQueryParam builds them: "/?skip=0&limit=1&<param>=<value>",
    # unencoded, reading resources[0][id]; one per key-info filter with a meaning for a synced key.
    for param, value in [("alias", "ans-app"), ("keyid", key_id), ("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
                         ("key_material_origin", "native"), ("key_source", "native"), ("kms", "ans-kms"),
                         ("region", "us-east-1")]:
        status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys/?skip=0&limit=1&{param}={value}", None, h)
        assert status == 200 and page["resources"], (param, page)
        reads(f"ansible key lookup {param}", page["resources"][0], {"id": STR})
    for param in ("multi_region_key_type", "custom_key_store_id", "tags"):
        status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys/?skip=0&limit=1&{param}=none", None, h)
        assert status == 200 and page["total"] == 0, (param, page)
    status, refused = send(stack, "GET", "/api/v1/cckm/aws/keys/?skip=0&limit=1&custom_key_store_name=x", None, h)
    assert status == 400 and "custom_key_store_name" in refused["message"], refused


def test_terraform_key_and_acl_resources_and_ansible_key_operations(fresh_stack):
    """Key writes in AWS: Terraform's ciphertrust_aws_key (cckm/aws/resource_aws_key.go, the newest source:
    create, update and destroy in the provider's order) and ciphertrust_aws_acl (resource_aws_acls.go), then
    Ansible's cckm_aws_key actions (plugins/modules/cckm_aws_key.py and module_utils/cckm_aws.py at
    7f57b82f: nested nulls pruned, add-tags in snake_case, remove-tags as bare keys)."""
    stack = fresh_stack
    kms_client = aws(stack, "kms")
    h = terraform_headers(terraform_sign_in(stack))
    status, kms = send(stack, "POST", "/api/v1/cckm/aws/kms",
                       {"account_id": OWN_ACCOUNT, "connection": "", "name": "tf-keys", "regions": ["us-east-1"],
                        "assume_role_arn": "", "assume_role_external_id": ""}, h)
    assert status == 201, kms
    # Create: the KMS resource checked, the key posted (Go zero values), more aliases, rotation, disable.
    status, _ = send(stack, "GET", f"/api/v1/cckm/aws/kms/{kms['id']}", None, h)
    assert status == 200
    body = {"kms": kms["id"], "region": "us-east-1", "external_accounts": None, "key_admins": None,
            "key_admins_roles": None, "key_users": None, "key_users_roles": None, "policytemplate": None,
            "aws_param": {"Alias": "tf-orders", "BypassPolicyLockoutSafetyCheck": False,
                          "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "Description": "orders",
                          "KeyUsage": "ENCRYPT_DECRYPT", "MultiRegion": False, "Policy": None,
                          "Tags": [{"TagKey": "team", "TagValue": "orders"}], "Origin": "AWS_KMS"}}
    status, created = send(stack, "POST", "/api/v1/cckm/aws/keys", body, h)
    assert status == 201, created
    reads("terraform key create", created, {"id": STR})
    key_path = f"/api/v1/cckm/aws/keys/{created['id']}"
    for action, action_body in [("add-alias", {"alias": "tf-orders-2"}), ("enable-auto-rotation", {}),
                                ("disable", None)]:
        status, answer = send(stack, "POST", f"{key_path}/{action}", action_body, h)
        assert status == 200, (action, answer)
    status, key = send(stack, "GET", key_path, None, h)
    assert status == 200, key
    reads("terraform key read after create", key, KEY_READS)
    aws_key = kms_client.describe_key(KeyId=key["aws_param"]["KeyID"])["KeyMetadata"]
    assert aws_key["KeyState"] == "Disabled" and aws_key["Description"] == "orders", aws_key
    assert sorted(key["aws_param"]["Alias"]) == ["alias/tf-orders", "alias/tf-orders-2"], key
    assert key["aws_param"]["KeyRotationEnabled"] is True, key
    status, rotations = send(stack, "GET", f"{key_path}/rotations?limit=10&skip=0&sort=-RotationDate", None, h)
    assert status == 200 and rotations["total"] == 0, rotations
    # Update: description, policy, tags and aliases as the plan changed them.
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "root", "Effect": "Allow", "Action": "kms:*",
              "Principal": {"AWS": f"arn:aws:iam::{OWN_ACCOUNT}:root"}, "Resource": "*"}]}
    for action, action_body in [
            ("update-description", {"description": "orders v2"}),
            ("policy", {"external_accounts": None, "key_admins": None, "key_admins_roles": None, "key_users": None,
                        "key_users_roles": None, "Policy": policy, "policytemplate": None}),
            ("add-tags", {"tags": [{"tag_key": "tier", "tag_value": "1"}]}),
            ("remove-tags", {"tags": ["team"]}),
            ("delete-alias", {"alias": "tf-orders-2"}),
            ("enable", None)]:
        status, answer = send(stack, "POST", f"{key_path}/{action}", action_body, h)
        assert status == 200, (action, answer)
        reads(f"terraform key {action}", answer, KEY_READS)
    tags = kms_client.list_resource_tags(KeyId=key["aws_param"]["KeyID"])["Tags"]
    assert tags == [{"TagKey": "tier", "TagValue": "1"}], tags
    assert json.loads(kms_client.get_key_policy(KeyId=key["aws_param"]["KeyID"], PolicyName="default")["Policy"]) == policy

    # ciphertrust_aws_acl: create (permit true), read (the KMS resource's acls), destroy (permit false).
    acl_path = f"/api/v1/cckm/aws/kms/{kms['id']}/update-acls"
    status, granted = send(stack, "POST", acl_path,
                           {"acls": [{"group": "cloud-team", "permit": True, "actions": ["keycreate", "viewnative"]}]},
                           h)
    assert status == 200, granted
    status, read = send(stack, "GET", f"/api/v1/cckm/aws/kms/{kms['id']}", None, h)
    assert read["acls"] == [{"group": "cloud-team", "actions": ["keycreate", "viewnative"]}], read
    status, revoked = send(stack, "POST", acl_path,
                           {"acls": [{"group": "cloud-team", "permit": False, "actions": ["keycreate", "viewnative"]}]},
                           h)
    assert status == 200 and revoked["acls"] == [], revoked

    # Ansible's key actions, then Terraform's destroy (schedule-deletion) and Ansible's cancel-deletion.
    ah = ansible_headers(ansible_sign_in(stack))
    for action, action_body in [("enable-auto-rotation", {"rotation_period_in_days": 180}),
                                ("rotate-material", None), ("disable-auto-rotation", None),
                                ("schedule-deletion", {"days": 7}), ("cancel-deletion", None)]:
        status, answer = send(stack, "POST", f"{key_path}/{action}", action_body, ah)
        assert status == 200 and "id" in answer and "codeDesc" not in json.dumps(answer), (action, answer)
    state = kms_client.describe_key(KeyId=key["aws_param"]["KeyID"])["KeyMetadata"]["KeyState"]
    assert state == "Disabled", state
    status, rotations = send(stack, "GET", f"{key_path}/rotations?RotationType=ON_DEMAND", None, ah)
    assert status == 200 and rotations["total"] == 1, rotations
    reads("ansible rotations", rotations["resources"][0], ROTATION_READS)


def newest_ansible_sign_in(stack):
    # cm_api.py @54bcbe83 _authenticate: auth_domain_path only when non-empty; one sign-in per task.
    username, password = stack.admin
    status, answer = send(stack, "POST", "/api/v1/auth/tokens",
                          {"grant_type": "password", "username": username, "password": password},
                          [("Content-Type", "application/json"), ("Connection", "keep-alive")])
    assert status == 200, answer
    SENT_SECRETS.extend([password, answer["jwt"].rsplit(".", 1)[-1]])
    return [("Content-Type", "application/json; charset=utf-8"), ("Authorization", f"Bearer {answer['jwt']}"),
            ("User-Agent", "Python-urllib/3.11")]


def q(pairs):
    # cckm_common.py build_query: urlencode (quote_plus), lists as repeated keys, booleans lowercased.
    return "?" + urllib.parse.urlencode(pairs)


def test_newest_ansible_collection_operations(fresh_stack):
    """The collection's newest AWS modules (commit 7f57b82f; cm_api.py @54bcbe83, cckm_aws.py and
    cckm_common.py @586489aa, idempotent.py @7f57b82f, connection modules @da4abfb3): each GET-before-write
    lookup, then the write, with nested nulls pruned (`prune`) and lists as repeated query keys."""
    stack = fresh_stack
    kms_client = aws(stack, "kms")
    h = newest_ansible_sign_in(stack)
    conn_path = "/api/v1/connectionmgmt/services/aws/connections"
    # connection_aws_test: unsaved credentials; only connection_ok false fails the task.
    SENT_SECRETS.append("newest-secret-access-key")
    creds = {"access_key_id": "AKIANEWEST000001", "secret_access_key": "newest-secret-access-key", "cloud_name": "aws"}
    status, tested = send(stack, "POST", "/api/v1/connectionmgmt/services/aws/connection-test", creds, h)
    assert status == 200 and tested["connection_ok"] is True, tested
    # connection_aws_save create: lookup by name, then POST (build_request_payload: top-level None dropped).
    status, page = send(stack, "GET", f"{conn_path}{q([('skip', 0), ('limit', 1), ('name', 'newest')])}", None, h)
    assert status == 200 and page["resources"] == [], page
    status, conn = send(stack, "POST", conn_path, {"name": "newest", **creds, "is_role_anywhere": False}, h)
    assert status == 201, conn
    # connection_test: a saved connection, by id.
    status, tested = send(stack, "POST", f"{conn_path}/{conn['id']}/test", None, h)
    assert status == 200 and tested["connection_ok"] is True, tested
    # cckm_aws_account_info accounts.
    status, account = send(stack, "POST", "/api/v1/cckm/aws/accounts", {"connection": "newest"}, h)
    assert status == 200 and account["account_id"] == OWN_ACCOUNT, account

    # cckm_aws_kms create (idempotent_create: ?skip=0&limit=1&name=), update_acls, archive, recover.
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/kms{q([('skip', 0), ('limit', 1), ('name', 'ans-new')])}",
                        None, h)
    assert status == 200 and page["resources"] == [], page
    status, kms = send(stack, "POST", "/api/v1/cckm/aws/kms",
                       {"name": "ans-new", "account_id": OWN_ACCOUNT, "connection": "newest",
                        "regions": ["us-east-1"]}, h)
    assert status == 201, kms
    status, acl = send(stack, "POST", "/api/v1/cckm/aws/kms/ans-new/update-acls",
                       {"acls": [{"group": "cloud-team", "permit": True, "actions": ["keycreate", "keyrotate"]}]}, h)
    assert status == 200 and acl["acls"][0]["actions"] == ["keycreate", "keyrotate"], acl
    for action, expected in (("archive", "ARCHIVED"), ("recover", "ACTIVE")):
        status, answer = send(stack, "POST", f"/api/v1/cckm/aws/kms/ans-new/{action}", None, h)
        assert status == 200 and answer["status"] == expected, (action, answer)
    # cckm_aws_kms_info list.
    status, page = send(stack, "GET", "/api/v1/cckm/aws/kms" + q([("name", "ans-new"), ("cloud_name", "aws"),
                                                                   ("status", "ACTIVE")]), None, h)
    assert status == 200 and page["total"] == 1, page

    # cckm_aws_key create: the alias lookup (alias, region, kms echoed), then POST with aws_param pruned.
    lookup = q([("alias", "ans-new-key"), ("region", "us-east-1"), ("kms", "ans-new"), ("skip", 0), ("limit", 1)])
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys{lookup}", None, h)
    assert status == 200 and page["resources"] == [], page
    status, alias = send(stack, "POST", "/api/v1/cckm/aws/alias/verify",
                         {"alias": "ans-new-key", "region": "us-east-1", "kms": "ans-new"}, h)
    assert status == 200 and alias["exists"] is False, alias
    status, key = send(stack, "POST", "/api/v1/cckm/aws/keys",
                       {"kms": "ans-new", "region": "us-east-1",
                        "aws_param": {"Alias": "ans-new-key", "Description": "from ansible",
                                      "Tags": [{"TagKey": "env", "TagValue": "prod"}]}}, h)
    assert status == 201 and "codeDesc" not in json.dumps(key), key
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys{lookup}", None, h)
    assert status == 200 and page["resources"][0]["region"] == "us-east-1", page
    assert page["resources"][0]["kms"] == "ans-new", page
    # cckm_aws_key_info: lists as repeated keys, tags as one JSON value, then get, versions, rotations.
    info = q([("kms", "ans-new"), ("region", "us-east-1"), ("region", "eu-west-1"),
              ("keystate", "Enabled"), ("enabled", "true"), ("tags", '{"env": "prod"}')])
    status, page = send(stack, "GET", f"/api/v1/cckm/aws/keys{info}", None, h)
    assert status == 200 and page["total"] == 1, page
    key_path = f"/api/v1/cckm/aws/keys/{key['id']}"
    # cckm_aws_key actions: bare POSTs (Content-Length 0) and pruned bodies.
    for action, body in (("rotate-material", None), ("enable-auto-rotation", {}),
                         ("add-tags", {"tags": [{"tag_key": "tier", "tag_value": "1"}]}),
                         ("remove-tags", {"tags": ["env"]}), ("update-description", {"description": "v2"}),
                         ("refresh", None)):
        status, answer = send(stack, "POST", f"{key_path}/{action}", body, h)
        assert status == 200 and "codeDesc" not in json.dumps(answer), (action, answer)
    for sub in ("", "/versions" + q([("skip", 0), ("limit", 10), ("sort", "-version")]),
                "/rotations" + q([("key_source", "native"), ("RotationType", "ON_DEMAND")])):
        status, answer = send(stack, "GET", f"{key_path}{sub}", None, h)
        assert status == 200, (sub, answer)
    assert answer["total"] == 1, answer
    tags = kms_client.list_resource_tags(KeyId=key["aws_param"]["KeyID"])["Tags"]
    assert tags == [{"TagKey": "tier", "TagValue": "1"}], tags

    # cckm_aws_synchronization_job create (kms as a list), info get and list.
    status, job = send(stack, "POST", "/api/v1/cckm/aws/synchronization-jobs", {"kms": ["ans-new"]}, h)
    assert status == 201, job
    run_queue(stack)
    status, job = send(stack, "GET", f"/api/v1/cckm/aws/synchronization-jobs/{job['id']}", None, h)
    assert status == 200 and job["overall_status"] != "in_progress", job
    status, page = send(stack, "GET", "/api/v1/cckm/aws/synchronization-jobs" + q([("kms", "ans-new"), ("limit", 5)]),
                        None, h)
    assert status == 200 and page["total"] >= 1, page
    # cm_resource_delete resource_type=aws-key: GET, then DELETE (our record only; AWS keeps the key).
    status, _ = send(stack, "GET", key_path, None, h)
    assert status == 200
    status, _ = send(stack, "DELETE", key_path, None, h)
    assert status == 204
    assert kms_client.describe_key(KeyId=key["aws_param"]["KeyID"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_a_read_only_user_reads_and_is_refused_writes_as_the_clients_see_it(fresh_stack):
    stack = fresh_stack
    cognito = boto3.client("cognito-idp", endpoint_url=stack.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    pool = stack.env["COGNITO_USER_POOL_ID"]
    cognito.admin_create_user(UserPoolId=pool, Username="auditor", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username="auditor", Password="Auditor-pass-1", Permanent=True)
    cognito.admin_add_user_to_group(UserPoolId=pool, Username="auditor", GroupName="cckm-readers")
    status, answer = send(stack, "POST", "/api/v1/auth/tokens",
                          {"grant_type": "password", "username": "auditor", "password": "Auditor-pass-1",
                           "auth_domain_path": ""}, [("Content-Type", "application/json")])
    assert status == 200, answer
    h = ansible_headers(answer["jwt"])
    status, _ = send(stack, "GET", "/api/v1/cckm/aws/kms", None, h)
    assert status == 200
    status, refused = send(stack, "POST", "/api/v1/cckm/aws/kms",
                           {"account_id": OWN_ACCOUNT, "name": "nope", "regions": ["us-east-1"]}, h)
    assert status == 403 and refused["code"] == 2, refused


def test_the_logs_hold_no_password_secret_key_or_token_of_the_clients(stack):
    """Runs after the client cases above (file order): their logs hold none of what they sent."""
    from pathlib import Path

    assert SENT_SECRETS, "the client cases ran first and sent secrets"
    logs = {path.name: path.read_text(errors="replace") for path in Path(stack.logs).glob("*.log")}
    for log, text in logs.items():
        if log == "moto.log":
            continue  # the emulator's own log, not ours
        for secret in SENT_SECRETS:
            assert secret not in text, f"a password, secret key or token in {log}"
