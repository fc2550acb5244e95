"""Which API a request goes to: a resource's group, version, plural and scope.

A `Resource` is all a verb needs to build its URL, so core kinds and custom
resources go through the same calls. The kinds of the project's own API are
declared by their users from `podnetwork.names`; the built-in kinds they use
are declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from kube.errors import BadRequest


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path. A namespaced resource without a namespace means all namespaces
        (list and watch only); a cluster-scoped one refuses a namespace."""
        if namespace and not self.namespaced:
            raise ValueError(f"{self} is cluster-scoped: namespace {namespace!r} "
                             "must not be given")
        if subresource and not name:
            raise ValueError(f"{self}: subresource {subresource!r} needs an object name")
        for what, value in (("namespace", namespace), ("name", name)):
            if value in (".", ".."):
                # The apiserver resolves the segment (GET pods/.. answers the
                # Namespace): refused, as client-go's IsValidPathSegmentName does.
                raise BadRequest(f"{self}: {what} {value!r} may not be '.' or '..'")
        parts = ["/api", self.version] if not self.group else ["/apis", self.group, self.version]
        if namespace:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


PODS = Resource("", "v1", "pods", kind="Pod")
SERVICES = Resource("", "v1", "services", kind="Service")
EVENTS = Resource("", "v1", "events", kind="Event")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False, kind="Namespace")
NODES = Resource("", "v1", "nodes", namespaced=False, kind="Node")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", kind="EndpointSlice")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", kind="NetworkPolicy")
LEASES = Resource("coordination.k8s.io", "v1", "leases", kind="Lease")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False,
                kind="CustomResourceDefinition")
MUTATING_WEBHOOKS = Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                             namespaced=False, kind="MutatingWebhookConfiguration")
VALIDATING_WEBHOOKS = Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                               namespaced=False, kind="ValidatingWebhookConfiguration")
SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False,
                                  kind="SubjectAccessReview")
