"""Test-only fault switches: the mutation lane's catalogue (hack/mutation).

Never set in a real deployment. Each switch makes one part do one thing wrong
at one decision point, so the lane can show that `kep-conformance` fails when
the implementation is broken in that way. They are named in the environment
variable `MULTINET_FAULTS` (comma-separated), read once when this module is
first imported, at the start of each process; a name not in `CATALOGUE` is
refused with an error naming it, so a typo never runs a "clean" lane.

Off by default: with the variable unset `ACTIVE` is empty and every check is
one set lookup. The call sites are `faults.on("name")`, each a line at the
point the fault changes; tests/api/test_faults.py holds catalogue and call
sites equal.
"""

from __future__ import annotations

import os

ENV = "MULTINET_FAULTS"

# name -> (part, what goes wrong)
CATALOGUE: dict[str, tuple[str, str]] = {
    "gate-never-lifted": ("controller", "the scheduling gate is never removed from a pod"),
    "ready-without-observed-generation": ("controller", "a PodNetwork's Ready condition keeps observedGeneration 0"),
    "duplicate-address": ("controller", "every pod of a network gets the same address"),
    "endpointslice-keeps-unready": ("controller", "per-network EndpointSlices list unready backends as ready"),
    "wrong-interface-name": ("agent", "a secondary interface is created under another name than requested"),
    "network-status-omits-attachment": ("agent", "the network-status annotation leaves out the last attachment"),
    "policy-ignores-namespace-selector": ("agent", "a policy peer's namespaceSelector matches every namespace"),
    "policy-ignores-ipblock-except": ("agent", "an ipBlock's except ranges are not cut out"),
    "egress-policy-ignored": ("agent", "egress policies isolate nothing"),
    "service-single-backend": ("agent", "a per-network Service VIP balances to its first backend only"),
    "shared-conntrack-zone": ("ipu", "every network shares conntrack zone 1, so overlapping networks collide"),
    "cross-node-drop": ("ipu", "traffic to pods on other nodes is dropped"),
}


class FaultError(ValueError):
    """MULTINET_FAULTS names a fault the catalogue does not hold."""


def parse(raw: str) -> frozenset[str]:
    """The set of faults in a comma-separated list; blanks ignored, unknown names refused."""
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(names - CATALOGUE.keys())
    if unknown:
        raise FaultError(f"{ENV}: unknown fault(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(CATALOGUE))}")
    return frozenset(names)


def from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> frozenset[str]:
    return parse(environ.get(ENV, ""))


ACTIVE: frozenset[str] = from_env()


def on(name: str) -> bool:
    """Whether the test-only fault `name` is switched on in this process."""
    return name in ACTIVE
