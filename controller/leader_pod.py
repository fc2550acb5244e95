"""The leader's own pod is labelled while it serves admission, so the webhook
Service (deploy/base, selector `multinet.io/leader: "true"`) sends admission to
the leader alone.

Admission is leader-only (the CREATE validation holds a pod's networks in use in
the leader's index, see `operator.run`), yet a standby must turn Ready, or a
Deployment of two replicas never rolls out: readiness is /healthz, which a
standby answers, and the Service's endpoints follow this label instead. A
replica removes the label before it waits for the lease (a restarted leader's
container keeps its pod, and so the label) and again when it stops.
"""

from __future__ import annotations

import logging

from kube import Kube, KubeError
from kube.resources import PODS

log = logging.getLogger(__name__)

LEADER_LABEL = "multinet.io/leader"


class LeaderPod:
    def __init__(self, kube: Kube, pod: tuple[str, str]) -> None:
        self.kube = kube
        self.namespace, self.name = pod

    def _label(self, value: str | None) -> None:
        # A merge patch: null removes the key, and nothing else of the pod is touched.
        self.kube.patch(PODS, self.name, {"metadata": {"labels": {LEADER_LABEL: value}}}, self.namespace)

    def mark(self) -> None:
        """Serving admission: the webhook Service selects this pod from now on."""
        self._label("true")
        log.info("labelled pod %s/%s %s=true: admission comes here", self.namespace, self.name, LEADER_LABEL)

    def clear(self) -> None:
        """Not (or no longer) serving admission."""
        self._label(None)

    def clear_quietly(self) -> None:
        """`clear` on the way out: a failure is logged, the replica stops all the same (its
        pod's readiness goes with it, so the Service sends nothing here either way)."""
        try:
            self.clear()
        except KubeError as exc:
            log.warning("could not remove %s from pod %s/%s: %s", LEADER_LABEL, self.namespace, self.name, exc)
