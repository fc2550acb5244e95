"""Who serves CNI_IFNAME (the cluster default network): one strategy per mode.

- routed: the agent itself, a /32 of the node's pod range behind a host-side
  veth that holds the range's gateway address (the same on every such veth);
- delegated: the node's primary conflist, run by the agent as a runtime would
  (as Multus does), its result passed on;
- none: nobody (chained after the plugin that made it, or no default network
  configured); the attachment has secondary interfaces only.

Each strategy records what it will own before it creates anything (journal),
creates it, undoes it, and checks it; the verbs in agent.verbs pick one per
attachment and never test a record's keys to know its mode.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from agent import delegate, links
from agent.plan import Route, link_name, stable_mac
from agent.record import AttachmentRecord, Eth0Mode, OwnedLink, PodRef
from agent.results import Result, merge
from cni import spec
from cni.result import normalise_result
from cni.spec import Code, CniError



class Eth0(Protocol):
    mode: Eth0Mode

    def journal(self, req: spec.Request, record: AttachmentRecord) -> AttachmentRecord:
        """The record with what this strategy will own (written before creating)."""

    def create(self, req: spec.Request, record: AttachmentRecord, pod: links.PodNetns,
               default_route: bool, result: Result) -> AttachmentRecord:
        """Make eth0; append it to `result`; return the record with what was learnt."""

    def undo(self, record: AttachmentRecord) -> list[str]:
        """Release what the record's eth0 holds beyond its links; errors, not exceptions."""

    def release(self, record: AttachmentRecord) -> None:
        """Forget in-memory state of a record that is gone."""

    def check(self, record: AttachmentRecord) -> list[str]:
        """CHECK of what this strategy made (problems, empty when fine)."""


class NoEth0:
    mode = Eth0Mode.NONE

    def journal(self, req: spec.Request, record: AttachmentRecord) -> AttachmentRecord:
        return record

    def create(self, req: spec.Request, record: AttachmentRecord, pod: links.PodNetns,
               default_route: bool, result: Result) -> AttachmentRecord:
        return record

    def undo(self, record: AttachmentRecord) -> list[str]:
        return []

    def release(self, record: AttachmentRecord) -> None:
        pass

    def check(self, record: AttachmentRecord) -> list[str]:
        return []


class RoutedEth0(NoEth0):
    mode = Eth0Mode.ROUTED

    def __init__(self, pod_cidr: ipaddress.IPv4Network, host_netns: str | None, link_prefix: str,
                 mtu: int, recorded: Iterable[AttachmentRecord], sessions: links.Sessions) -> None:
        self.pod_cidr = pod_cidr
        self.sessions = sessions
        self.gateway = next(pod_cidr.hosts())  # on every host-side veth
        self.host_netns = host_netns
        self.link_prefix = link_prefix
        self.mtu = mtu
        self._lock = threading.Lock()
        # Addresses in use: the records are the truth, read once at start.
        self._used = {r.default_ip for r in recorded if r.default_ip}

    def journal(self, req: spec.Request, record: AttachmentRecord) -> AttachmentRecord:
        owned = (OwnedLink(req.netns, req.ifname, stable_mac(req.container_id, req.ifname)),
                 OwnedLink(self.host_netns, self._host_veth(req)))
        return dataclasses.replace(record, default_ip=self._allocate(), links=owned + record.links)

    def abandon(self, record: AttachmentRecord) -> None:
        """The journal write failed: the address was never recorded."""
        self.release(record)

    def _allocate(self) -> str:
        hosts = self.pod_cidr.hosts()
        next(hosts)  # the gateway
        with self._lock:
            for ip in hosts:
                if str(ip) not in self._used:
                    self._used.add(str(ip))
                    return str(ip)
        raise CniError(Code.TRY_AGAIN_LATER, f"pod range {self.pod_cidr} is exhausted")

    def release(self, record: AttachmentRecord) -> None:
        with self._lock:
            self._used.discard(record.default_ip or "")

    def _host_veth(self, req: spec.Request) -> str:
        return link_name(self.link_prefix, req.container_id, req.ifname)

    def create(self, req: spec.Request, record: AttachmentRecord, pod: links.PodNetns,
               default_route: bool, result: Result) -> AttachmentRecord:
        ip = ipaddress.ip_interface(f"{record.default_ip}/32")
        gateway = ipaddress.ip_interface(f"{self.gateway}/32")
        host_name, mac = self._host_veth(req), stable_mac(req.container_id, req.ifname)
        # The host side's MAC is chosen too, so the result needs no read back.
        host_mac = stable_mac(req.container_id, f"{req.ifname}/host")
        # Made from the host side: the pod end is born in the pod, down, and
        # comes up with its address (see datapath.netlink.Batch.new_veth).
        with self.sessions.of(self.host_netns) as host:
            made = host.batch()
            made.new_veth(host_name, req.ifname, pod.fd, self.mtu, mac=host_mac, peer_mac=mac,
                          peer_group=record.group)
            veth = made.get_link(host_name)  # and, as its peer, the pod end's index
            made.commit()
            routed = host.batch()
            links.add_addresses(routed, veth.index, [gateway])
            links.add_route(routed, veth.index, Route(ip.network, None))
            routed.commit()
        configured = pod.session.batch()
        configured.set_up(veth.peer_index)
        links.add_addresses(configured, veth.peer_index, [ip])
        links.add_route(configured, veth.peer_index, Route(gateway.network, None))
        if default_route:
            links.add_route(configured, veth.peer_index, Route(ipaddress.ip_network("0.0.0.0/0"), self.gateway),
                            onlink=True)
        configured.commit()
        at = len(result["interfaces"])
        result["interfaces"] += [
            {"name": host_name, "mac": host_mac},
            {"name": req.ifname, "mac": mac, "mtu": self.mtu, "sandbox": req.netns},
        ]
        result["ips"].append({"address": str(ip), "gateway": str(self.gateway), "interface": at + 1})
        if default_route:
            result["routes"].append({"dst": "0.0.0.0/0", "gw": str(self.gateway)})
        return record


class DelegatedEth0(NoEth0):
    """The primary conflist in `conf_dir` serves eth0 (spec 2: a plugin that
    delegates ADD delegates DEL, CHECK, STATUS and GC to the same plugins)."""

    mode = Eth0Mode.DELEGATED

    def __init__(self, conf_dir: Path, host_netns: str | None, bin_dirs: tuple[str, ...]) -> None:
        self.conf_dir = conf_dir
        self.host_netns = host_netns
        self.bin_dirs = bin_dirs

    def primary(self) -> delegate.ConfList:
        return delegate.find_primary(self.conf_dir)

    def journal(self, req: spec.Request, record: AttachmentRecord) -> AttachmentRecord:
        return dataclasses.replace(record, delegate=self.primary().path)

    def create(self, req: spec.Request, record: AttachmentRecord, pod: links.PodNetns,
               default_route: bool, result: Result) -> AttachmentRecord:
        out = delegate.run_chain("ADD", self.primary(), self.invocation(record), None)
        merge(result, normalise_result(out or {}))
        return dataclasses.replace(record, delegate_result=out)

    def undo(self, record: AttachmentRecord) -> list[str]:
        try:
            delegate.run_chain("DEL", self.primary(), self.invocation(record), record.delegate_result)
        except CniError as err:
            return [f"primary network DEL: {err.msg}"]
        return []

    def check(self, record: AttachmentRecord) -> list[str]:
        conf = self.primary()  # none installed: CniError 11, try again
        try:
            delegate.run_chain("CHECK", conf, self.invocation(record), record.delegate_result)
        except CniError as err:
            return [err.msg]
        return []

    def status(self, path: tuple[str, ...]) -> None:
        """STATUS of the primary network; its 50/51 passed on, anything else is 50."""
        try:
            delegate.run_network_verb("STATUS", self.primary(), self.search_path(path), self.host_netns, {})
        except CniError as err:
            code = err.code if err.code in (Code.NOT_AVAILABLE, Code.LIMITED_CONNECTIVITY) else Code.NOT_AVAILABLE
            raise CniError(code, err.msg, err.details) from None

    def del_unknown(self, req: spec.Request) -> None:
        """DEL of an attachment nothing is recorded for: the primary may still hold it."""
        try:
            conf = self.primary()
        except CniError:
            return
        inv = delegate.Invocation(
            container_id=req.container_id, netns=req.netns, ifname=req.ifname, args=spec_args(req),
            path=tuple(req.path or self.bin_dirs), host_netns=self.host_netns,
            runtime_config=runtime_config(req),
        )
        delegate.run_chain("DEL", conf, inv, req.prev_result)

    def gc(self, req: spec.Request, delegated: Iterable[AttachmentRecord]) -> list[str]:
        """GC of the primary. Still valid there: what the runtime lists and every
        attachment this agent still delegates for."""
        try:
            conf = self.primary()
        except CniError:
            return []
        valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
        valid |= {(r.container_id, r.ifname) for r in delegated}
        listed = [{"containerID": c, "ifname": i} for c, i in sorted(valid)]
        extra = {key: listed for key in spec.VALID_ATTACHMENTS_KEYS}
        failures = delegate.run_network_verb("GC", conf, self.search_path(req.path), self.host_netns, extra)
        return [f"primary network GC: {err.msg}" for err in failures]

    def search_path(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """Where delegated plugins are found: CNI_PATH (optional for STATUS), then --cni-bin-dir."""
        return tuple(dict.fromkeys((*path, *self.bin_dirs)))

    def invocation(self, record: AttachmentRecord) -> delegate.Invocation:
        return delegate.Invocation(
            container_id=record.container_id, netns=record.netns, ifname=record.ifname,
            args=record.args, path=record.path or self.bin_dirs, host_netns=self.host_netns,
            runtime_config=dict(record.runtime_config),
        )


def made_earlier(req: spec.Request) -> bool:
    """Chained after a plugin whose result already holds CNI_IFNAME in the
    sandbox (spec 3: prevResult): that plugin serves the default network."""
    prev = req.prev_result or {}
    return any(itf.get("name") == req.ifname and itf.get("sandbox") for itf in prev.get("interfaces", []))


def runtime_config(req: spec.Request) -> dict[str, Any]:
    """The capability arguments the runtime gave (passed on to delegates)."""
    value = req.config.get("runtimeConfig")
    return dict(value) if isinstance(value, Mapping) else {}


def spec_args(req: spec.Request) -> str:
    return ";".join(f"{k}={v}" for k, v in req.args.items())


def pod_of(req: spec.Request) -> PodRef:
    """The pod named by CNI_ARGS; PodRef("", "") when CNI_ARGS names none."""
    missing = [k for k in ("K8S_POD_NAMESPACE", "K8S_POD_NAME") if not req.args.get(k)]
    if len(missing) == 2:
        return PodRef("", "")
    if missing:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS lacks {', '.join(missing)}")
    return PodRef(req.args["K8S_POD_NAMESPACE"], req.args["K8S_POD_NAME"], req.args.get("K8S_POD_UID", ""))
