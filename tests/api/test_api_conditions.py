"""KEP-3698 condition computation and stable lastTransitionTime."""

from __future__ import annotations

from collections.abc import Iterable

from podnetwork.conditions import Condition, ParamsVerdict, attachment_conditions, is_ready, merge, pod_network_conditions

OK = ParamsVerdict(True, "Valid", "NetworkParams blue is valid")
BAD = ParamsVerdict(False, "NotFound", "NetworkParams blue does not exist")


def summary(conds: Iterable[Condition]) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in conds}


def test_pod_network_no_params_is_ready_without_params_condition() -> None:
    assert summary(pod_network_conditions(True, None, 1)) == {"Ready": ("True", "Ready")}


def test_pod_network_params_not_ready() -> None:
    assert summary(pod_network_conditions(True, BAD, 1)) == {
        "Ready": ("False", "ParamsNotReady"), "ParamsReady": ("False", "NotFound")}


def test_pod_network_disabled_wins() -> None:
    assert summary(pod_network_conditions(False, OK, 3))["Ready"] == ("False", "AdministrativelyDisabled")
    assert all(c.observed_generation == 3 for c in pod_network_conditions(False, OK, 3))


def test_attachment_reasons() -> None:
    assert summary(attachment_conditions("blue", None, None, 1))["Ready"] == ("False", "PodNetworkNotReady")
    assert summary(attachment_conditions("blue", False, None, 1))["Ready"] == ("False", "PodNetworkNotReady")
    assert summary(attachment_conditions("blue", True, BAD, 1))["Ready"] == ("False", "ParamsNotReady")
    assert summary(attachment_conditions("blue", True, OK, 1))["Ready"] == ("True", "Ready")


def test_merge_keeps_transition_time_unless_status_flips() -> None:
    first = [c.to_json() for c in merge([], pod_network_conditions(True, OK, 1), "T1")]
    again = merge(first, pod_network_conditions(True, OK, 2), "T2")
    assert {c.last_transition_time for c in again} == {"T1"}
    assert {c.observed_generation for c in again} == {2}
    flipped = merge(first, pod_network_conditions(False, OK, 2), "T3")
    times = {c.type: c.last_transition_time for c in flipped}
    assert times == {"Ready": "T3", "ParamsReady": "T1"}


def test_merge_keeps_foreign_conditions() -> None:
    foreign = {"type": "Programmed", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "T0"}
    out = merge([foreign], pod_network_conditions(True, None, 1), "T1")
    assert [c.type for c in out] == ["Ready", "Programmed"]


def test_is_ready() -> None:
    assert is_ready([{"type": "Ready", "status": "True"}])
    assert not is_ready([{"type": "Ready", "status": "False"}]) and not is_ready(None)
