"""Invoke the function with every sample event in events/ (through `cargo lambda invoke`) and check the answer.

Generic checks: API Gateway events (v1 and v2) get an object with an integer `statusCode`, equal to
events/expectations.json[file] when that names one, and error answers carry the CCKM error body
(`code`, `codeDesc`), and every answer forbids caching and sniffing; SQS events get `null` or `{"batchItemFailures": [...]}` naming only messages of the
batch; other events must not fail. Each event runs against an empty stack (fresh_stack).
"""

import json
from pathlib import Path

import pytest

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOT_EVENTS = {"expectations.json"}


def _event_files():
    if not EVENTS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{EVENTS} does not exist (no sample events yet)"))]
    files = sorted(p for p in EVENTS.glob("*.json") if p.name not in NOT_EVENTS)
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no *.json events in {EVENTS}"))]
    return [pytest.param(p, id=p.stem) for p in files]


def _expectations():
    path = EVENTS / "expectations.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _kind(event):
    if isinstance(event, dict) and "requestContext" in event and ("httpMethod" in event or "rawPath" in event):
        return "api"
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and records[0].get("eventSource") == "aws:sqs":
        return "sqs"
    return "other"


def _json_body(answer):
    body = answer.get("body")
    if body in (None, ""):
        return None
    if answer.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body).decode()
    return json.loads(body)


@pytest.mark.parametrize("event_file", _event_files())
def test_event(fresh_stack, event_file):
    event = json.loads(event_file.read_text())
    kind = _kind(event)
    code, answer, stderr = fresh_stack.invoke(event_file, worker=kind == "sqs")
    shown = repr(answer)
    shown = shown if len(shown) <= 1500 else shown[:1500] + "..."
    where = f"{event_file.name}: exit {code}, answer {shown}\nstderr: {stderr[-2000:]}\nlogs: {fresh_stack.logs}"
    assert code == 0, f"invoke failed: {where}"
    assert not (isinstance(answer, dict) and "errorType" in answer), f"function error: {where}"

    if kind == "api":
        assert isinstance(answer, dict) and isinstance(answer.get("statusCode"), int), f"no statusCode: {where}"
        expected = _expectations().get(event_file.name)
        if expected is not None:
            assert answer["statusCode"] == expected, f"expected {expected}: {where}"
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        assert headers.get("cache-control") == "no-store", f"cacheable: {where}"
        assert headers.get("x-content-type-options") == "nosniff", f"sniffable: {where}"
        if answer["statusCode"] >= 400:
            body = _json_body(answer)
            assert isinstance(body, dict) and "code" in body and "codeDesc" in body, f"not a CCKM error: {where}"
    elif kind == "sqs":
        assert answer is None or isinstance(answer, dict), f"bad SQS answer: {where}"
        ids = {r["messageId"] for r in event["Records"]}
        for failure in (answer or {}).get("batchItemFailures") or []:
            assert failure.get("itemIdentifier") in ids, f"unknown itemIdentifier: {where}"
