"""The webhook server's TLS: a CA and serving certificate made by the controller itself.

Self-made rather than issued by the cluster CA, so the controller works on any
cluster (kind, cloud) without access to the cluster's CA key; the CA goes into
the webhook configurations' caBundle.

Replicas behind one Service must serve with the CA in that caBundle, so with a
Secret named (`--cert-secret`) the first replica to start puts its CA
certificate, serving certificate and key there and every other one takes
them from it. The CA's own key never leaves the replica that made it: nothing
but the serving certificate is ever signed with it.
"""

from __future__ import annotations

import base64
import datetime
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kube import AlreadyExists, Conflict, Kube, Obj, Resource, pki

SECRETS = Resource("", "v1", "secrets", kind="Secret")
SECRET_KEYS = {"ca.crt": "ca", "tls.crt": "cert", "tls.key": "key"}
RENEW_BEFORE = datetime.timedelta(days=30)  # a certificate expiring sooner is replaced


@dataclass(frozen=True)
class ServingCert:
    cert: Path
    key: Path
    ca: Path

    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode("ascii")


def serving_cert(directory: Path, *hosts: str) -> ServingCert:
    """A CA and a serving certificate for `hosts` (DNS names or IPs) under `directory`."""
    ca = pki.ensure_ca(directory, name="webhook-ca", common_name="multinet-webhook-ca")
    leaf = pki.issue(ca, directory, "webhook", "multinet-controller", server_names=(*hosts, "localhost"),
                     client=False)
    return ServingCert(leaf.cert, leaf.key, ca.cert)


def shared_cert(kube: Kube, secret: tuple[str, str], directory: Path, *hosts: str) -> ServingCert:
    """The serving certificate kept in the Secret `secret` (namespace, name), made and stored
    there first when it is missing, incomplete, lacks one of `hosts` or expires soon."""
    namespace, name = secret
    current = kube.find(SECRETS, name, namespace)
    if current is None or not _usable(current, hosts):
        with tempfile.TemporaryDirectory(prefix="multinet-webhook-") as scratch:  # the CA key goes with it
            made = serving_cert(Path(scratch), *hosts)
            data = {key: base64.b64encode(getattr(made, attr).read_bytes()).decode("ascii")
                    for key, attr in SECRET_KEYS.items()}
        body: Obj = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": name, "namespace": namespace}, "data": data}
        try:
            if current is None:
                current = kube.create(SECRETS, body, namespace)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                current = kube.replace(SECRETS, name, body, namespace)
        except (AlreadyExists, Conflict):
            current = kube.get(SECRETS, name, namespace)  # another replica was first: serve with its
    return _write(current, directory)


def _usable(secret: Obj, hosts: tuple[str, ...]) -> bool:
    data = secret.get("data") or {}
    if not all(data.get(key) for key in SECRET_KEYS):
        return False
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    present = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    present |= {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > RENEW_BEFORE
    return fresh and set(hosts) <= present


def _write(secret: Obj, directory: Path) -> ServingCert:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {attr: directory / f"webhook-{key}" for key, attr in SECRET_KEYS.items()}
    for key, attr in SECRET_KEYS.items():
        paths[attr].write_bytes(base64.b64decode(secret["data"][key]))
        paths[attr].chmod(0o600)
    return ServingCert(paths["cert"], paths["key"], paths["ca"])
