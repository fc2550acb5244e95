"""PodNetworks and PodNetworkAttachments as the binding shapes them; the suite
removes what it made (unless --cleanup-test-resources=false)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import pytest
from kubernetes import client

from suite.binding import NOT_READY_DELETE, Binding, ParamsTemplate
from suite.kube import as_dict, condition, ignore_missing, unique, wait_for

NETWORKS = "podnetworks"
ATTACHMENTS = "podnetworkattachments"

Made = tuple[str, str, str, str, str | None]  # group, version, plural, name, namespace


class Networks:
    def __init__(self, custom: client.CustomObjectsApi, binding: Binding, timeout: float, cleanup: bool,
                 params_namespace: Callable[[], str]) -> None:
        self.custom = custom
        self.binding = binding
        self.timeout = timeout
        self.keep = not cleanup
        self.params_namespace = params_namespace
        self.made: list[Made] = []
        self.params_of: dict[str, tuple[Made, ParamsTemplate]] = {}  # network -> its parameters, made from

    @property
    def group(self) -> str:
        return self.binding.group

    @property
    def version(self) -> str:
        return self.binding.version

    def template(self, kind: str = "distinct", index: int = 0) -> ParamsTemplate:
        found = self.binding.template(kind, index)
        if found is None:
            pytest.skip(f"the options file gives no parameters.{kind} template")
        return found

    def _params_object(self, template: ParamsTemplate) -> tuple[dict[str, str], Made]:
        body = copy.deepcopy(template.object or {})
        name = unique("kep-params")
        namespace = self.params_namespace() if template.namespaced else None
        body["metadata"] = {"name": name, **({"namespace": namespace} if namespace else {})}
        group, version = body["apiVersion"].split("/")
        plural = str(template.plural)
        if namespace:
            self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        else:
            self.custom.create_cluster_custom_object(group, version, plural, body)
        made: Made = (group, version, plural, name, namespace)
        self.made.append(made)
        ref = {"group": group, "kind": body["kind"], "name": name, **({"namespace": namespace} if namespace else {})}
        return ref, made

    def spec(self, kind: str, index: int, enabled: bool | None, refs: list[dict[str, str]] | None,
             name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.binding.provider:
            spec["provider"] = self.binding.provider
        if refs is not None:
            spec["parametersRefs"] = refs
        elif self.binding.parameters_mode == "refs":
            ref, made = self._params_object(self.template(kind, index))
            spec["parametersRefs"] = [ref]
            self.params_of[name] = made, self.template(kind, index)
        elif self.binding.parameters_mode == "inline":
            spec["parameters"] = copy.deepcopy(self.template(kind, index).inline)
        if enabled is not None:
            spec["enabled"] = enabled
        return spec

    def create(self, name: str | None = None, *, kind: str = "distinct", index: int = 0,
               enabled: bool | None = None, refs: list[dict[str, str]] | None = None) -> dict[str, Any]:
        name = name or unique("kep-net")
        body = {"apiVersion": f"{self.group}/{self.version}", "kind": "PodNetwork", "metadata": {"name": name},
                "spec": self.spec(kind, index, enabled, refs, name)}
        # The stubs say None; the client returns the created object.
        created = as_dict(cast(Any, self.custom).create_cluster_custom_object(self.group, self.version, NETWORKS, body))
        self.made.append((self.group, self.version, NETWORKS, name, None))
        return created

    def get(self, name: str) -> dict[str, Any]:
        return as_dict(self.custom.get_cluster_custom_object(self.group, self.version, NETWORKS, name))

    def patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return as_dict(self.custom.patch_cluster_custom_object(self.group, self.version, NETWORKS, name,
                                                               {"spec": spec}))

    def delete(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(self.group, self.version, NETWORKS, name)

    def wait_condition(self, name: str, kind: str, status: str, reason: str | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(name)
            c = condition(obj, kind)
            if c and c["status"] == status and (reason is None or c.get("reason") == reason):
                return obj
            return None
        found: dict[str, Any] = wait_for(check, self.timeout, f"PodNetwork {name}: {kind}={status} {reason or ''}")
        return found

    def ready(self, name: str) -> dict[str, Any]:
        return self.wait_condition(name, "Ready", "True")

    def set_params(self, network: str, template: ParamsTemplate) -> None:
        """Change a network's parameters in place: the referenced object's spec, or spec.parameters."""
        if self.binding.parameters_mode == "inline":
            self.patch(network, {"parameters": copy.deepcopy(template.inline)})
            return
        (group, version, plural, name, namespace), _ = self.params_of[network]
        body = {"spec": copy.deepcopy((template.object or {}).get("spec"))}
        if namespace:
            self.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, body)
        else:
            self.custom.patch_cluster_custom_object(group, version, plural, name, body)

    def unready_params(self, network: str) -> str:
        """Make the referenced parameters not Ready as the options file says (parameters.notReady):
        delete the object, or replace its spec. Says what it did."""
        (group, version, plural, name, namespace), _ = self.params_of[network]
        if self.binding.params_not_ready != NOT_READY_DELETE:
            self.set_params(network, self.template("notReady"))
            return f"{plural} {name}: spec replaced by parameters.notReady"
        if namespace:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        else:
            self.custom.delete_cluster_custom_object(group, version, plural, name)
        wait_for(lambda: self._params_gone(network), self.timeout, f"{plural} {name} deleted")
        return f"{plural} {name} deleted"

    def restore_params(self, network: str) -> None:
        """Undo `unready_params`: the object made again from the network's template, or its spec put back."""
        (group, version, plural, name, namespace), template = self.params_of[network]
        if self.binding.params_not_ready != NOT_READY_DELETE:
            self.set_params(network, template)
            return
        body = copy.deepcopy(template.object or {})
        body["metadata"] = {"name": name, **({"namespace": namespace} if namespace else {})}
        if namespace:
            self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        else:
            self.custom.create_cluster_custom_object(group, version, plural, body)

    def _params_gone(self, network: str) -> bool:
        (group, version, plural, name, namespace), _ = self.params_of[network]
        try:
            if namespace:
                self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
            else:
                self.custom.get_cluster_custom_object(group, version, plural, name)
        except client.ApiException as err:
            if err.status == 404:
                return True
            raise
        return False

    # --- attachments ---------------------------------------------------------------

    def attach(self, namespace: str, network: str, name: str | None = None) -> str:
        name = name or unique("kep-pna")
        self.custom.create_namespaced_custom_object(self.group, self.version, namespace, ATTACHMENTS, {
            "apiVersion": f"{self.group}/{self.version}", "kind": "PodNetworkAttachment",
            "metadata": {"name": name}, "spec": {"podNetworkName": network}})
        self.made.append((self.group, self.version, ATTACHMENTS, name, namespace))
        return name

    def attachment(self, namespace: str, name: str) -> dict[str, Any]:
        return as_dict(self.custom.get_namespaced_custom_object(self.group, self.version, namespace, ATTACHMENTS,
                                                                name))

    def delete_attachment(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(self.group, self.version, namespace, ATTACHMENTS, name)

    def cleanup(self) -> None:
        if self.keep:
            return
        for group, version, plural, name, ns in reversed(self.made):
            if ns:
                ignore_missing(lambda: self.custom.delete_namespaced_custom_object(group, version, ns, plural, name))
            else:
                ignore_missing(lambda: self.custom.delete_cluster_custom_object(group, version, plural, name))
        self.made.clear()
