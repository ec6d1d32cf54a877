#!/usr/bin/env python3
"""Launch moto's server with six small patches for cckm-aws-sync's local runs and tests.

Usage: moto_server.py [--exit-on-stdin-eof] -H 127.0.0.1 -p PORT   (otherwise the arguments of `moto_server`)

`--exit-on-stdin-eof` makes the server exit when its standard input closes: a test process that holds the
pipe takes the emulator down with it, even when it dies without cleaning up.

Patches (moto 5.2.x; each checks the symbol it replaces and exits loudly if moto changed):
1. Lazy KMS key material. moto's `Key.__init__` generates an RSA/EC private key for *every* key,
   symmetric ones included (~70 ms CPU each). We make `generate_private_key` return a lazy holder and
   turn `Key.private_key` into a property that builds the real key on first use (Sign, Verify,
   GetPublicKey). The holder is shared by shallow copies, so a multi-region replica still has the
   primary's key material, as in AWS.
2. Real paging for ListKeys (Limit 1..1000, default 100), ListAliases (1..100, default 50) and
   ListResourceTags (1..50, default 50): moto returns everything in one page. We wrap moto's own
   handler, then cut its answer with `Limit`/`Marker` and answer `NextMarker` + `Truncated` as AWS does.
   The marker is opaque (base64 JSON of the last item's identity and its position); a marker that does
   not decode answers `InvalidMarkerException`.
3. Atomic DynamoDB requests: moto's threaded server can interleave two updates of one item and lose one;
   DynamoDB requests are served one at a time, as DynamoDB applies each atomically.
4. One rollback copy per table per transaction: moto's TransactWriteItems deep-copies a table once per
   *action* (100 copies of the whole jobs table for a transaction of 100 leases), which made a lease
   transaction take seconds once the table held a few thousand items. The copies are all taken before
   the first write, so one per table is the same snapshot.
5. Sending to SQS in constant time: moto's SendMessage reads the queue's whole attribute map, approximate
   message counts included (a pass over every message), only to learn whether content-based
   deduplication is on; 850 messages took 11 s. While a message is sent, the queue answers just that.
6. The KMS operations moto lacks that a CloudTrail event test needs: GetParametersForImport,
   ImportKeyMaterial and DeleteImportedKeyMaterial (a key created with `Origin=EXTERNAL` waits in
   `PendingImport`, is `Enabled` once material is imported, and shows `ExpirationModel`/`ValidTo`), and
   UpdatePrimaryRegion (the named replica becomes the primary; every key of the set shows the new
   `MultiRegionConfiguration`). A replica made by ReplicateKey shows itself as `REPLICA` (moto's copy
   shared the primary's configuration). Key material ids, as AWS reports them: `CurrentKeyMaterialId` in
   DescribeKey, and `KeyMaterialId` in each ListKeyRotations entry. EnableKeyRotation keeps
   `RotationPeriodInDays` (90 to 2560, default 365), and GetKeyRotationStatus reports it. They change
   moto's own key objects, so every other operation sees them.
"""

import base64
import hashlib
import binascii
import json
import sys


def _die(msg: str) -> "None":
    sys.stderr.write(f"moto_server.py: cannot patch moto ({msg}); check the pinned moto version\n")
    sys.exit(3)


try:
    import moto  # noqa: F401
    from moto import server as moto_server
    from moto.core.exceptions import JsonRESTError
    from moto.kms import models as kms_models
    from moto.kms import responses as kms_responses
except ImportError as exc:  # pragma: no cover
    _die(f"import failed: {exc}")


# ---------------------------------------------------------------- 1. lazy private key material
class _LazyPrivateKey:
    """Stands in for moto's private key object until somebody actually needs it."""

    __slots__ = ("key_spec", "_real")

    def __init__(self, key_spec):
        self.key_spec = key_spec
        self._real = None

    def resolve(self):
        if self._real is None:
            self._real = _ORIGINAL_GENERATE_PRIVATE_KEY(self.key_spec)
        return self._real


def _patch_lazy_key_material() -> None:
    global _ORIGINAL_GENERATE_PRIVATE_KEY
    original = getattr(kms_models, "generate_private_key", None)
    key_cls = getattr(kms_models, "Key", None)
    if original is None or key_cls is None:
        _die("moto.kms.models.generate_private_key or moto.kms.models.Key is missing")
    if "private_key" in vars(key_cls):
        _die("moto.kms.models.Key already defines a private_key attribute")
    _ORIGINAL_GENERATE_PRIVATE_KEY = original

    def _get(self):
        value = self.__dict__["_cckm_private_key"]
        return value.resolve() if isinstance(value, _LazyPrivateKey) else value

    def _set(self, value):
        self.__dict__["_cckm_private_key"] = value

    kms_models.generate_private_key = _LazyPrivateKey
    key_cls.private_key = property(_get, _set, doc="private key material, generated on first use")

    # Self-check: a fresh key must hold a lazy placeholder, not real material.
    probe = key_cls(None, "SIGN_VERIFY", "RSA_2048", "", "123456789012", "us-east-1")
    if not isinstance(probe.__dict__.get("_cckm_private_key"), _LazyPrivateKey):
        _die("Key.__init__ no longer calls generate_private_key; lazy key material not applied")


# ---------------------------------------------------------------- 2. Limit/Marker paging
def _validation(msg: str) -> JsonRESTError:
    return JsonRESTError("ValidationException", msg)


def _encode_marker(ident: str, pos: int) -> str:
    raw = json.dumps({"k": ident, "i": pos}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_marker(marker: str):
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
        data = json.loads(raw)
        return str(data["k"]), int(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise JsonRESTError("InvalidMarkerException", "The request was rejected because the marker that specifies where pagination should next begin is not valid.")


def _paged(list_field: str, ident_field: str, max_limit: int, default_limit: int):
    """Wrap a moto KmsResponse handler: apply Limit/Marker to its full `list_field` answer."""

    def wrap(original):
        def handler(self) -> str:
            limit = self._get_param("Limit")
            marker = self._get_param("Marker")
            if limit is None:
                limit = default_limit
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_limit:
                raise _validation(
                    f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                    f"constraint: Member must have value between 1 and {max_limit}"
                )
            answer = json.loads(original(self))
            items = answer.get(list_field) or []
            start = 0
            if marker is not None:
                if not isinstance(marker, str) or not marker:
                    raise _validation("Marker must be a non-empty string")
                ident, pos = _decode_marker(marker)
                idents = [item.get(ident_field) for item in items]
                # Resume after the marker's item; if it vanished meanwhile, at its old position.
                start = idents.index(ident) + 1 if ident in idents else min(max(pos, 0), len(items))
            page = items[start : start + limit]
            answer[list_field] = page
            answer.pop("NextMarker", None)
            answer["Truncated"] = start + limit < len(items)
            if answer["Truncated"]:
                answer["NextMarker"] = _encode_marker(page[-1].get(ident_field), start + len(page))
            return json.dumps(answer)

        handler.__name__ = original.__name__
        handler.__doc__ = (original.__doc__ or "") + " (paged by scripts/moto_server.py)"
        return handler

    return wrap


_PAGED = {
    # method: (list field, identity field, max Limit, default Limit)
    "list_keys": ("Keys", "KeyId", 1000, 100),
    "list_aliases": ("Aliases", "AliasName", 100, 50),
    "list_resource_tags": ("Tags", "TagKey", 50, 50),
}


def _patch_paging() -> None:
    cls = getattr(kms_responses, "KmsResponse", None)
    if cls is None:
        _die("moto.kms.responses.KmsResponse is missing")
    for name, spec in _PAGED.items():
        original = vars(cls).get(name)
        if not callable(original):
            _die(f"moto.kms.responses.KmsResponse.{name} is missing")
        setattr(cls, name, _paged(*spec)(original))


# ---------------------------------------------------------------- 3. atomic DynamoDB requests
def _patch_atomic_dynamodb() -> None:
    """moto's server is threaded and its DynamoDB updates are read-modify-write in Python: two concurrent
    `SET n = n + :one` (or two conditional writes) can lose one. DynamoDB applies each request atomically,
    and the function relies on that, so DynamoDB requests are served one at a time (other services are not)."""
    import threading

    from moto.dynamodb import responses as dynamodb_responses

    cls = getattr(dynamodb_responses, "DynamoHandler", None)
    original = vars(cls).get("call_action") if cls else None
    if not callable(original):
        _die("moto.dynamodb.responses.DynamoHandler.call_action is missing")
    lock = threading.Lock()

    def call_action(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    cls.call_action = call_action


# ---------------------------------------------------------------- 4. one rollback copy per table
def _patch_transaction_backup() -> None:
    import copy
    import threading

    from moto.dynamodb import models as dynamodb_models

    backend = getattr(dynamodb_models, "DynamoDBBackend", None)
    table_cls = getattr(dynamodb_models, "Table", None)
    original = vars(backend).get("transact_write_items") if backend else None
    if not callable(original) or table_cls is None or getattr(dynamodb_models, "copy", None) is not copy:
        _die("moto.dynamodb.models.DynamoDBBackend.transact_write_items (or its use of copy) changed")
    state = threading.local()

    class _CopyOncePerTransaction:
        """`copy` as moto's DynamoDB models see it: inside a transaction a table is deep-copied once."""

        def __getattr__(self, name):
            return getattr(copy, name)

        def deepcopy(self, value, *args, **kwargs):
            copies = getattr(state, "copies", None)
            if copies is None or not isinstance(value, table_cls):
                return copy.deepcopy(value, *args, **kwargs)
            if id(value) not in copies:
                copies[id(value)] = copy.deepcopy(value, *args, **kwargs)
            return copies[id(value)]

    def transact_write_items(self, *args, **kwargs):
        state.copies = {}
        try:
            return original(self, *args, **kwargs)
        finally:
            state.copies = None

    dynamodb_models.copy = _CopyOncePerTransaction()
    backend.transact_write_items = transact_write_items


# ---------------------------------------------------------------- 5. constant-time SQS sends
def _patch_sqs_send() -> None:
    import threading

    from moto.sqs import models as sqs_models

    queue_cls = getattr(sqs_models, "Queue", None)
    backend = getattr(sqs_models, "SQSBackend", None)
    attributes = vars(queue_cls).get("attributes") if queue_cls else None
    if not isinstance(attributes, property) or backend is None or not all(
        callable(vars(backend).get(name)) for name in ("send_message", "send_message_batch")
    ):
        _die("moto.sqs.models.Queue.attributes or SQSBackend.send_message(_batch) changed")
    state = threading.local()

    def sending_attributes(self):
        if not getattr(state, "sending", False):
            return attributes.fget(self)
        # What a send reads of the queue: content-based deduplication, a FIFO attribute.
        if not self.fifo_queue:
            return {}
        value = getattr(self, "content_based_deduplication", False)
        return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}

    def while_sending(original):
        def send(self, *args, **kwargs):
            outer = getattr(state, "sending", False)
            state.sending = True
            try:
                return original(self, *args, **kwargs)
            finally:
                state.sending = outer

        return send

    queue_cls.attributes = property(sending_attributes)
    for name in ("send_message", "send_message_batch"):
        setattr(backend, name, while_sending(vars(backend)[name]))


# ---------------------------------------------------------------- 6. imported key material, primary-region moves
_ADDED_KMS_OPERATIONS = (
    "get_parameters_for_import",
    "import_key_material",
    "delete_imported_key_material",
    "update_primary_region",
)


def _patch_kms_operations() -> None:
    import os
    import time

    response_cls = getattr(kms_responses, "KmsResponse", None)
    key_cls = getattr(kms_models, "Key", None)
    backends = getattr(kms_models, "kms_backends", None)
    if response_cls is None or key_cls is None or backends is None:
        _die("moto.kms KmsResponse, Key or kms_backends is missing")
    if any(hasattr(response_cls, name) for name in _ADDED_KMS_OPERATIONS):
        _die("moto.kms now implements an operation this patch adds; drop the patch")
    original_init = key_cls.__init__
    original_to_dict = key_cls.to_dict

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.origin == "EXTERNAL":
            self.key_state, self.enabled = "PendingImport", False

    def to_dict(self):
        answer = original_to_dict(self)
        rotated = [r["KeyMaterialId"] for r in getattr(self, "rotations", []) if "KeyMaterialId" in r]
        answer["KeyMetadata"]["CurrentKeyMaterialId"] = rotated[-1] if rotated else material_id(self.id, 0)
        model = getattr(self, "_cckm_expiration_model", None)
        if model:
            answer["KeyMetadata"]["ExpirationModel"] = model
            if self._cckm_valid_to is not None:
                answer["KeyMetadata"]["ValidTo"] = self._cckm_valid_to
        return answer

    def material_id(key_id, n):
        return hashlib.sha256(f"{key_id}/{n}".encode()).hexdigest()

    def rotate_key_on_demand(self, key_id):
        answer = original_rotate(self, key_id)
        key = self.keys[self.get_key_id(key_id)]
        key.rotations[-1]["KeyMaterialId"] = material_id(key.id, len(key.rotations))
        return answer

    def external_key(self):
        key_id = self._get_param("KeyId")
        self._validate_key_id(key_id)
        key = self.kms_backend.describe_key(key_id)
        if key.origin != "EXTERNAL":
            raise JsonRESTError("UnsupportedOperationException", f"{key.arn} origin is {key.origin}")
        return key

    def get_parameters_for_import(self):
        key = external_key(self)
        return json.dumps(
            {
                "KeyId": key.arn,
                "ImportToken": base64.b64encode(os.urandom(64)).decode(),
                "PublicKey": base64.b64encode(os.urandom(256)).decode(),
                "ParametersValidTo": time.time() + 86400,
            }
        )

    def import_key_material(self):
        key = external_key(self)
        if not self._get_param("ImportToken") or not self._get_param("EncryptedKeyMaterial"):
            raise JsonRESTError("ValidationException", "ImportToken and EncryptedKeyMaterial are required")
        model = self._get_param("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
        valid_to = self._get_param("ValidTo")
        if (model == "KEY_MATERIAL_EXPIRES") != (valid_to is not None):
            raise JsonRESTError("ValidationException", "ValidTo goes with KEY_MATERIAL_EXPIRES, and only with it")
        key._cckm_expiration_model, key._cckm_valid_to = model, valid_to
        key.key_state, key.enabled = "Enabled", True
        return "{}"

    def delete_imported_key_material(self):
        key = external_key(self)
        key._cckm_expiration_model = key._cckm_valid_to = None
        key.key_state, key.enabled = "PendingImport", False
        return "{}"

    def update_primary_region(self):
        key_id = self._get_param("KeyId")
        new_primary = self._get_param("PrimaryRegion")
        self._validate_key_id(key_id)
        key = self.kms_backend.describe_key(key_id)
        config = key.multi_region_configuration if key.multi_region else None
        if not config or config.get("MultiRegionKeyType") != "PRIMARY":
            raise JsonRESTError("UnsupportedOperationException", f"{key.arn} is not a primary multi-Region key")
        members = {key.region: key}
        for replica in config.get("ReplicaKeys", []):
            replica_key = backends[self.current_account][replica["Region"]].keys.get(key.id)
            if replica_key is not None:
                members[replica["Region"]] = replica_key
        if new_primary not in members:
            raise JsonRESTError("NotFoundException", f"{key.arn} has no replica in {new_primary}")
        primary = {"Arn": members[new_primary].arn, "Region": new_primary}
        replicas = [{"Arn": k.arn, "Region": r} for r, k in sorted(members.items()) if r != new_primary]
        # Replicas are shallow copies: each gets its own configuration object.
        for region, member in members.items():
            member.multi_region_configuration = {
                "MultiRegionKeyType": "PRIMARY" if region == new_primary else "REPLICA",
                "PrimaryKey": dict(primary),
                "ReplicaKeys": [dict(r) for r in replicas],
            }
        return "{}"

    backend_cls = getattr(kms_models, "KmsBackend", None)
    original_replicate = vars(backend_cls).get("replicate_key") if backend_cls else None
    original_rotate = vars(backend_cls).get("rotate_key_on_demand") if backend_cls else None
    if original_replicate is None or original_rotate is None:
        _die("moto.kms.models.KmsBackend.replicate_key or rotate_key_on_demand is missing")

    def replicate_key(self, key_id, replica_region):
        replica = original_replicate(self, key_id, replica_region)
        config = self.keys[key_id].multi_region_configuration
        replica.multi_region_configuration = {
            "MultiRegionKeyType": "REPLICA",
            "PrimaryKey": dict(config["PrimaryKey"]),
            "ReplicaKeys": [dict(r) for r in config["ReplicaKeys"]],
        }
        return replica

    original_enable_rotation = vars(response_cls).get("enable_key_rotation")
    original_rotation_status = vars(response_cls).get("get_key_rotation_status")
    if original_enable_rotation is None or original_rotation_status is None:
        _die("moto.kms KmsResponse.enable_key_rotation or get_key_rotation_status is missing")

    def enable_key_rotation(self):
        period = self._get_param("RotationPeriodInDays")
        if period is not None and not 90 <= period <= 2560:
            raise JsonRESTError("ValidationException", "RotationPeriodInDays must be between 90 and 2560")
        answer = original_enable_rotation(self)
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        key._cckm_rotation_period = period or 365
        return answer

    def get_key_rotation_status(self):
        answer = json.loads(original_rotation_status(self))
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        if answer.get("KeyRotationEnabled"):
            answer["RotationPeriodInDays"] = getattr(key, "_cckm_rotation_period", 365)
        return json.dumps(answer)

    response_cls.enable_key_rotation = enable_key_rotation
    response_cls.get_key_rotation_status = get_key_rotation_status
    backend_cls.replicate_key = replicate_key
    backend_cls.rotate_key_on_demand = rotate_key_on_demand
    key_cls.__init__ = init
    key_cls.to_dict = to_dict
    for operation in (get_parameters_for_import, import_key_material, delete_imported_key_material, update_primary_region):
        setattr(response_cls, operation.__name__, operation)


def apply_patches() -> None:
    _patch_lazy_key_material()
    _patch_paging()
    _patch_atomic_dynamodb()
    _patch_transaction_backup()
    _patch_sqs_send()
    _patch_kms_operations()


def _exit_when_stdin_closes() -> None:
    import os
    import threading

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def main(argv=None) -> None:
    import os

    # User pool and app client ids made from their names and settings, not drawn at random: a pool
    # created again after `/moto-api/reset` (the e2e tests' fresh stack) keeps the ids the function has.
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY", "HASH")
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY", "HASH")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--exit-on-stdin-eof" in argv:
        argv.remove("--exit-on-stdin-eof")
        _exit_when_stdin_closes()
    apply_patches()
    main_fn = getattr(moto_server, "main", None)
    if main_fn is None:
        _die("moto.server.main is missing")
    main_fn(argv)


if __name__ == "__main__":
    main()
