"""The webhook server's TLS: a CA and serving certificate made by the controller itself.

Self-made rather than issued by the cluster CA, so the controller works on any
cluster (kind, cloud) without access to the cluster's CA key; the CA goes into
the webhook configurations' caBundle.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from kube import pki


@dataclass(frozen=True)
class ServingCert:
    cert: Path
    key: Path
    ca: Path

    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode("ascii")


def serving_cert(directory: Path, host: str) -> ServingCert:
    ca = pki.ensure_ca(directory, name="webhook-ca", common_name="multinet-webhook-ca")
    leaf = pki.issue(ca, directory, "webhook", "multinet-controller", server_names=(host, "localhost"),
                     client=False)
    return ServingCert(leaf.cert, leaf.key, ca.cert)
