"""KEP-3698 status conditions of PodNetwork and PodNetworkAttachment, computed purely.

The controller feeds in what it observed (enabled flag, parameter validity,
the referenced PodNetwork's readiness) and gets the desired condition list;
`merge` keeps lastTransitionTime stable unless the status flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from podnetwork.names import (
    CONDITION_PARAMS_READY,
    CONDITION_READY,
    REASON_ADMIN_DISABLED,
    REASON_PARAMS_NOT_READY,
    REASON_POD_NETWORK_NOT_READY,
)

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str
    observed_generation: int
    last_transition_time: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type, "status": self.status, "reason": self.reason,
            "message": self.message, "observedGeneration": self.observed_generation,
            "lastTransitionTime": self.last_transition_time,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(raw["type"], raw["status"], raw.get("reason", ""), raw.get("message", ""),
                   int(raw.get("observedGeneration", 0)), raw.get("lastTransitionTime", ""))


@dataclass(frozen=True)
class ParamsVerdict:
    """Outcome of checking a parametersRefs list: ok, or why not."""

    ok: bool
    reason: str
    message: str


def pod_network_conditions(enabled: bool, params: ParamsVerdict | None, generation: int) -> list[Condition]:
    """Ready and ParamsReady of a PodNetwork; ParamsReady is absent without parametersRefs."""
    out: list[Condition] = []
    if params is not None:
        out.append(Condition(CONDITION_PARAMS_READY, "True" if params.ok else "False",
                             params.reason, params.message, generation))
    if not enabled:
        ready = Condition(CONDITION_READY, "False", REASON_ADMIN_DISABLED,
                          "spec.enabled is false: no new pods may attach", generation)
    elif params is not None and not params.ok:
        ready = Condition(CONDITION_READY, "False", REASON_PARAMS_NOT_READY,
                          f"ParamsReady is False: {params.message}", generation)
    else:
        ready = Condition(CONDITION_READY, "True", "Ready", "PodNetwork is ready", generation)
    return [ready, *out]


def attachment_conditions(network: str, network_ready: bool | None, params: ParamsVerdict | None,
                          generation: int) -> list[Condition]:
    """Ready and ParamsReady of a PodNetworkAttachment; `network_ready` None = missing."""
    out: list[Condition] = []
    if params is not None:
        out.append(Condition(CONDITION_PARAMS_READY, "True" if params.ok else "False",
                             params.reason, params.message, generation))
    if params is not None and not params.ok:
        ready = Condition(CONDITION_READY, "False", REASON_PARAMS_NOT_READY,
                          f"ParamsReady is False: {params.message}", generation)
    elif not network_ready:
        state = "does not exist" if network_ready is None else "is not Ready"
        ready = Condition(CONDITION_READY, "False", REASON_POD_NETWORK_NOT_READY,
                          f"PodNetwork {network!r} {state}", generation)
    else:
        ready = Condition(CONDITION_READY, "True", "Ready", "PodNetworkAttachment is ready", generation)
    return [ready, *out]


def merge(current: Sequence[Mapping[str, Any]], desired: Sequence[Condition], now: str) -> list[Condition]:
    """The desired conditions, keeping each one's lastTransitionTime unless its status changed.

    Conditions of other types (set by someone else) are kept as they are.
    """
    old = {c["type"]: Condition.from_json(c) for c in current}
    want = {c.type for c in desired}
    merged = [
        replace(c, last_transition_time=old[c.type].last_transition_time)
        if c.type in old and old[c.type].status == c.status and old[c.type].last_transition_time
        else replace(c, last_transition_time=now)
        for c in desired
    ]
    managed = {CONDITION_READY, CONDITION_PARAMS_READY}
    kept = [c for t, c in old.items() if t not in want and t not in managed]
    return merged + kept


def is_ready(conditions: Sequence[Mapping[str, Any]] | None) -> bool:
    return any(c.get("type") == CONDITION_READY and c.get("status") == "True" for c in conditions or ())
