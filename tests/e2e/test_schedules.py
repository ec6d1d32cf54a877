"""Both scheduled-sync payloads of events/ through `cargo lambda invoke`, on a stack where KMS "demo" is
registered: the CCKM scheduler's bare input starts the job it names; the EventBridge "Scheduled Event"
envelope starts a synchronize_all job, and is refused (logged, answered, not raised) while that overlaps."""

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _register_demo(stack):
    code, answer, stderr = stack.invoke(EVENTS / "apigw-v2-create-kms.json")
    assert code == 0 and answer["statusCode"] == 201, f"{answer} {stderr[-1500:]}"
    return json.loads(answer["body"])


def test_scheduler_input_starts_the_named_job_then_the_envelope_is_refused_while_it_runs(fresh_stack):
    kms = _register_demo(fresh_stack)
    code, started, stderr = fresh_stack.invoke(EVENTS / "scheduler-input.json")
    assert code == 0, stderr[-1500:]
    assert started["started"] is True, started
    assert started["overall_status"] == "in_progress"
    code, refused, stderr = fresh_stack.invoke(EVENTS / "eventbridge-scheduled-event.json")
    assert code == 0, stderr[-1500:]
    assert refused["started"] is False, refused
    assert started["job_id"] in refused["reason"], refused
    assert kms["account_id"] in refused["reason"], refused


def test_scheduled_event_envelope_starts_a_synchronize_all_job(fresh_stack):
    _register_demo(fresh_stack)
    code, started, stderr = fresh_stack.invoke(EVENTS / "eventbridge-scheduled-event.json")
    assert code == 0, stderr[-1500:]
    assert started["started"] is True, started


def test_a_scheduled_start_with_nothing_registered_is_refused_without_an_error(fresh_stack):
    code, refused, stderr = fresh_stack.invoke(EVENTS / "eventbridge-scheduled-event.json")
    assert code == 0, stderr[-1500:]
    assert refused == {"started": False, "reason": "no KMS resource with a region is registered to synchronize"}
