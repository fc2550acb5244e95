"""The project's own kinds, as `kube.Resource`s (names from `podnetwork.names`)."""

from __future__ import annotations

from kube.resources import Resource
from podnetwork import names

POD_NETWORKS = Resource(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL, namespaced=False,
                        kind=names.POD_NETWORK_KIND)
POD_NETWORK_ATTACHMENTS = Resource(names.GROUP, names.VERSION, names.POD_NETWORK_ATTACHMENT_PLURAL,
                                   kind=names.POD_NETWORK_ATTACHMENT_KIND)
NETWORK_PARAMS = Resource(names.PARAMS_GROUP, names.PARAMS_VERSION, names.PARAMS_PLURAL, namespaced=False,
                          kind=names.PARAMS_KIND)
IP_ALLOCATIONS = Resource(names.PARAMS_GROUP, names.PARAMS_VERSION, names.IP_ALLOCATION_PLURAL,
                          namespaced=False, kind=names.IP_ALLOCATION_KIND)
NETWORK_ID_CLAIMS = Resource(names.PARAMS_GROUP, names.PARAMS_VERSION, names.NETWORK_ID_CLAIM_PLURAL,
                             namespaced=False, kind=names.NETWORK_ID_CLAIM_KIND)
