"""The IAM policies of template.yaml grant no more than the function uses: no `*` action (nor `service:*`),
and a `*` resource only for KMS calls that AWS does not scope to a resource (ListKeys, ListAliases, and
CreateKey, whose key has no ARN yet). A statement under a condition (`!If`) is checked as the others.
SAM policy templates (`DynamoDBCrudPolicy`, `SQSSendMessagePolicy`) are scoped to their named resource by SAM.
"""

from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# Reads that IAM cannot scope to a key: the only actions that may name `Resource: "*"`.
UNSCOPED_KMS_CALLS = {"kms:ListKeys", "kms:ListAliases", "kms:CreateKey"}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {f"!{suffix}": loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {f"!{suffix}": loader.construct_sequence(node)}
    return {f"!{suffix}": loader.construct_mapping(node)}


_CfnLoader.add_multi_constructor("!", _any_tag)


def _listed(value):
    return value if isinstance(value, list) else [value]


def _statements():
    """(where, statement) for every policy statement of every function and role."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    found = []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        documents = [p for p in props.get("Policies") or [] if isinstance(p, dict) and "Statement" in p]
        documents += [p["PolicyDocument"] for p in props.get("Policies") or []
                      if isinstance(p, dict) and "PolicyDocument" in p]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in _listed(document["Statement"]):
                # !If [condition, statement, AWS::NoValue]: the statement it adds when the condition holds.
                if "!If" in statement:
                    statement = statement["!If"][1]
                found.append((f"{name}/{statement.get('Sid', '?')}", statement))
    return found


def test_the_template_has_policies_to_check():
    assert len(_statements()) >= 8


def test_no_statement_allows_every_action_of_a_service():
    for where, statement in _statements():
        for action in _listed(statement.get("Action", [])):
            assert action != "*" and not str(action).endswith(":*"), f"{where}: {action}"
        assert "NotAction" not in statement, where


def test_a_star_resource_is_only_for_kms_calls_that_cannot_be_scoped():
    for where, statement in _statements():
        if statement.get("Effect") != "Allow" or "Resource" not in statement:
            continue  # a trust policy names a principal, not a resource
        if "*" in _listed(statement["Resource"]):
            actions = set(_listed(statement["Action"]))
            assert actions <= UNSCOPED_KMS_CALLS, f"{where}: {sorted(actions)} on every resource"
