"""The node agent: does the work of each CNI verb the shim forwards.

Libraries only: the pod source (informer caches of the apiserver), the
reporter (annotations, readiness condition, events) and the datapath are
passed in; `agent.cli` wires them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError

from agent import delegate, links
from cni import spec
from agent.plan import (
    InterfacePlan,
    Route,
    is_link_name,
    link_group,
    link_name,
    plan_interfaces,
    stable_mac,
)
from cni.spec import Code, CniError
from agent.store import ADDING, READY, StateStore
from datapath.ports import Datapath, NetworkId, PortAttachment
from podnetwork.allocations import Allocation
from podnetwork.params import NetworkParams
from podnetwork.names import DEFAULT_NETWORK, NODE_PREFIX

log = logging.getLogger(__name__)
OWN_NETNS = "/proc/self/ns/net"


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class PodNetworking:
    """What the cluster says about one pod's secondary networks."""

    pod: PodRef
    allocations: tuple[Allocation, ...] = ()
    params: Mapping[str, NetworkParams] = field(default_factory=dict)


class PodSource(Protocol):
    def networking(self, pod: PodRef) -> PodNetworking:
        """The pod's allocations and their networks' params; CniError(11) while unknown."""

    def synced(self) -> bool:
        """True once the caches hold a full listing."""


class Reporter(Protocol):
    def attached(self, pod: PodRef, statuses: list[dict[str, Any]]) -> None:
        """Interfaces exist (and are programmed): write status, set readiness."""

    def failed(self, pod: PodRef, message: str) -> None:
        """An ADD failed: tell the pod's owner (an Event)."""


@dataclass(frozen=True)
class NodeConfig:
    node: str
    state_dir: Path
    ipu_netns: str | None = None  # where representors go (None: the agent's own)
    host_netns: str | None = None  # eth0 host side, macvlan uplinks, delegated plugins
    link_prefix: str = NODE_PREFIX
    pod_cidr: ipaddress.IPv4Network | None = None  # serve eth0 as a routed range
    conf_dir: Path | None = None  # or delegate eth0 to the primary conflist here
    bin_dirs: tuple[str, ...] = ("/opt/cni/bin",)
    default_mtu: int = 1500
    crash_at: str = ""  # test hook: exit hard after this ADD step ("eth0", "links")


class Agent:
    def __init__(
        self,
        config: NodeConfig,
        pods: PodSource,
        reporter: Reporter | None = None,
        datapath: Datapath | None = None,
    ) -> None:
        self.config = config
        self.pods = pods
        self.reporter = reporter
        self.datapath = datapath
        self.store = StateStore(config.state_dir)
        # Striped per-container locks: bounded memory however many pods come and go.
        self._locks = tuple(threading.Lock() for _ in range(256))
        self._ipam_lock = threading.Lock()
        # Addresses of the routed eth0 range in use: the records are the truth,
        # read once here rather than on every ADD.
        records = self.store.all()
        self._used_ips = {str(r["defaultIP"]) for r in records if r.get("defaultIP")}
        # (network, container id) -> interface names of its attachments that
        # made the pod's secondary interfaces (see _has_secondaries).
        self._secondaries: dict[tuple[str, str], set[str]] = {}
        for r in records:
            if r.get("plans"):
                self._secondaries.setdefault((r["network"], r["containerID"]), set()).add(r["ifname"])
        self.macvlan_supported = links.kernel_has_link_kind("macvlan", config.link_prefix)

    # --- entry -----------------------------------------------------------

    def recover(self) -> int:
        """At start: undo every ADD that a previous run left half-made."""
        self.store.sweep_temp()
        undone = 0
        for record in self.store.all():
            if record.get("phase") == ADDING:
                log.warning("undoing interrupted ADD of %s/%s", record["containerID"], record["ifname"])
                self._undo(record)
                self._forget(record)
                undone += 1
        return undone

    def recorded_ports(self) -> list[PortAttachment]:
        """Every port of a completed ADD, for a datapath that (re)starts: it must
        know them before it reconciles, or it would remove their entries."""
        return [_port_from_doc(doc) for record in self.store.all() if record.get("phase") != ADDING
                for doc in record.get("ports") or ()]

    def handle(self, env: Mapping[str, str], stdin: bytes | str) -> tuple[int, Any]:
        """One CNI invocation -> (exit code, stdout document or None)."""
        try:
            request = spec.parse_request(env, stdin)
        except CniError as err:
            return 1, err.to_result(spec.reply_version(env, stdin))
        try:
            return 0, self._dispatch(request)
        except CniError as err:
            return 1, err.to_result(request.version)
        except (OSError, NetlinkError, ValueError, LookupError) as err:
            log.exception("%s %s failed", request.command, request.container_id)
            return 1, CniError(Code.INTERFACE_FAILURE, f"{request.command} failed: {err}").to_result(request.version)

    def _dispatch(self, req: spec.Request) -> Any:
        if req.command == "VERSION":
            return spec.version_result(req.version)
        if req.command == "STATUS":
            self._status(req.path)
            return None
        if req.command == "GC":
            self._gc(req)
            return None
        with self._lock(req.container_id):
            if req.command == "ADD":
                return spec.render_result(self._add(req), req.version)
            if req.command == "DEL":
                self._del(req)
            else:
                self._check(req)
        return None

    @contextmanager
    def _lock(self, container_id: str) -> Iterator[None]:
        # The runtime never runs two verbs for one container at once, but GC
        # and a late DEL may race an ADD: serialise per container.
        digest = hashlib.blake2b(container_id.encode(), digest_size=2).digest()
        with self._locks[int.from_bytes(digest, "big") % len(self._locks)]:
            yield

    # --- STATUS ------------------------------------------------------------

    def _status(self, path: tuple[str, ...] = ()) -> None:
        if not self.pods.synced():
            raise CniError(Code.NOT_AVAILABLE, "multinet agent has not synced its pod caches yet")
        if self.config.conf_dir is not None:
            try:
                conf = delegate.find_primary(self.config.conf_dir)
                # Spec 2, STATUS: a plugin that delegates ADD asks its delegates too.
                delegate.run_network_verb("STATUS", conf, self._search_path(path), self.config.host_netns, {})
            except CniError as err:
                code = err.code if err.code in (Code.NOT_AVAILABLE, Code.LIMITED_CONNECTIVITY) else Code.NOT_AVAILABLE
                raise CniError(code, err.msg, err.details) from None

    def _search_path(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """Where delegated plugins are found: CNI_PATH (optional for STATUS), then --cni-bin-dir."""
        return tuple(dict.fromkeys((*path, *self.config.bin_dirs)))

    # --- ADD -----------------------------------------------------------------

    def _add(self, req: spec.Request) -> dict[str, Any]:
        existing = self.store.read(req.network, req.container_id, req.ifname)
        if existing is not None and existing.get("phase") == READY and existing.get("netns") == req.netns:
            # Spec 2, ADD: an interface of the requested name that already
            # exists is an error (the runtime must DEL before adding again).
            raise CniError(
                Code.INTERFACE_FAILURE,
                f"container {req.container_id} already has interface {req.ifname} on network {req.network}",
                "ADD without an intervening DEL",
            )
        if existing is not None:
            self._undo(existing)
            self._forget(existing)
        pod = pod_of(req)
        # No pod identity (CNI_ARGS is optional, spec 2): a container outside
        # Kubernetes gets the default network only, and nothing is reported.
        networking = self.pods.networking(pod) if pod.name else PodNetworking(pod)
        # A further attachment of the container leaves the pod's status, written
        # by the attachment that made its secondary interfaces, as it is.
        again = self._has_secondaries(req)
        reporter = self.reporter if pod.name and not again else None
        plans = self._plan(req, networking) if not again else ()
        record = self._journal(req, pod, plans)
        try:
            result = self._create(req, record, plans)
            self._attach(pod, plans, record)
        except BaseException as err:
            self._undo(record)
            self._forget(record)
            if reporter is not None and isinstance(err, Exception):
                reporter.failed(pod, f"{req.command} {req.ifname}: {err}")
            raise
        record.update(phase=READY, result=result)
        self.store.write(record)
        if reporter is not None:
            reporter.attached(pod, network_status(record))
        return result

    def _has_secondaries(self, req: spec.Request) -> bool:
        """Whether another attachment of this container to this network (another
        CNI_IFNAME, spec 2: allowed) already made the pod's secondary interfaces:
        they are the pod's, made once; this attachment adds its own interface only."""
        with self._ipam_lock:
            return bool(self._secondaries.get((req.network, req.container_id), set()) - {req.ifname})

    def _plan(self, req: spec.Request, networking: PodNetworking) -> tuple[InterfacePlan, ...]:
        try:
            plans = plan_interfaces(
                req.container_id, networking.allocations, networking.params, self.config.link_prefix
            )
        except ValueError as err:
            raise CniError(Code.INVALID_CONFIG, str(err)) from None
        for plan in plans:
            if plan.name == req.ifname:
                raise CniError(
                    Code.INVALID_CONFIG,
                    f"interfaceName {plan.name!r} of network {plan.network} clashes with CNI_IFNAME",
                )
            if plan.kind == "macvlan" and not self.macvlan_supported:
                raise CniError(
                    Code.INVALID_CONFIG,
                    f"interfaceKind macvlan of network {plan.network} is not supported by this kernel",
                )
        return plans

    def _journal(self, req: spec.Request, pod: PodRef, plans: tuple[InterfacePlan, ...]) -> dict[str, Any]:
        """Write the ADD's intent before touching anything (see agent.store)."""
        planned: list[dict[str, Any]] = [{"netns": req.netns, "name": p.name, "mac": p.mac} for p in plans]
        planned += [{"netns": self.config.ipu_netns, "name": p.peer} for p in plans if p.kind == "veth"]
        record: dict[str, Any] = {
            "network": req.network,
            "containerID": req.container_id,
            "ifname": req.ifname,
            "netns": req.netns,
            "pod": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
            "phase": ADDING,
            "group": link_group(req.network, req.container_id, req.ifname),
            "links": planned,
            "plans": [_plan_doc(p) for p in plans],
            "args": spec_args(req),
            "path": list(req.path or self.config.bin_dirs),
            "runtimeConfig": runtime_config(req),
        }
        if made_earlier(req):
            pass  # chained after the plugin that made CNI_IFNAME: it is that plugin's
        elif self.config.conf_dir is not None:
            record["delegate"] = delegate.find_primary(self.config.conf_dir).path
        elif self.config.pod_cidr is not None:
            record["links"].insert(0, {"netns": req.netns, "name": req.ifname,
                                       "mac": stable_mac(req.container_id, req.ifname)})
            record["links"].insert(1, {"netns": self.config.host_netns, "name": self._host_veth(req)})
        with self._ipam_lock:
            if self.config.pod_cidr is not None and self.config.conf_dir is None and not made_earlier(req):
                record["defaultIP"] = self._allocate_default_ip()
            try:
                self.store.write(record)
            except BaseException:
                self._used_ips.discard(record.get("defaultIP", ""))
                raise
            if plans:
                self._secondaries.setdefault((req.network, req.container_id), set()).add(req.ifname)
        return record

    def _host_veth(self, req: spec.Request) -> str:
        return link_name(self.config.link_prefix, req.container_id, req.ifname)

    def _allocate_default_ip(self) -> str:
        """Under the IPAM lock: the lowest free address of the range."""
        assert self.config.pod_cidr is not None
        hosts = self.config.pod_cidr.hosts()
        next(hosts)  # the first host address is the gateway on every host-side veth
        for ip in hosts:
            if str(ip) not in self._used_ips:
                self._used_ips.add(str(ip))
                return str(ip)
        raise CniError(Code.TRY_AGAIN_LATER, f"pod range {self.config.pod_cidr} is exhausted")

    def _create(self, req: spec.Request, record: dict[str, Any], plans: tuple[InterfacePlan, ...]) -> dict[str, Any]:
        result: dict[str, Any] = {"interfaces": [], "ips": [], "routes": [], "dns": {}}
        if req.prev_result is not None:
            # Chained after another plugin: pass its result on, ours appended.
            _merge(result, req.prev_result)
        try:
            pod_fd = links.open_netns(req.netns)
        except links.NetnsGone as err:
            raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_NETNS {req.netns}: {err}") from None
        try:
            with links.rtnl(req.netns) as pod:
                self._default_interface(req, record, pod, pod_fd, plans, result)
                self._crash_point("eth0")
                for plan in plans:
                    self._secondary(req, pod, pod_fd, plan, record["group"], result)
                self._crash_point("links")
        finally:
            os.close(pod_fd)
        return result

    def _crash_point(self, step: str) -> None:
        if self.config.crash_at == step:
            log.error("crash hook: exiting after ADD step %s", step)
            os._exit(137)

    def _default_interface(
        self, req: spec.Request, record: dict[str, Any], pod: Any, pod_fd: int,
        plans: tuple[InterfacePlan, ...], result: dict[str, Any],
    ) -> None:
        if "delegate" in record:
            conf = delegate.find_primary(self.config.conf_dir) if self.config.conf_dir else None
            assert conf is not None
            out = delegate.run_chain("ADD", conf, self._invocation(record), None)
            record["delegateResult"] = out
            self.store.write(record)
            _merge(result, spec.normalise_result(out or {}))
            return
        if "defaultIP" not in record:
            return
        self._routed_eth0(req, record, pod, pod_fd, not any(p.default_gw4 for p in plans), result)

    def _routed_eth0(
        self, req: spec.Request, record: dict[str, Any], pod: Any, pod_fd: int, default: bool, result: dict[str, Any]
    ) -> None:
        """eth0 on the node's routed pod range: a /32 behind a host-side veth
        that holds the range's gateway address (the same on every such veth)."""
        assert self.config.pod_cidr is not None
        ip = ipaddress.ip_interface(f"{record['defaultIP']}/32")
        gateway = next(self.config.pod_cidr.hosts())
        host_name = self._host_veth(req)
        mac = stable_mac(req.container_id, req.ifname)
        host_fd = links.open_netns(self.config.host_netns or OWN_NETNS)
        try:
            index = links.create_veth(
                pod, req.ifname, mac, self.config.default_mtu, host_name, host_fd, record["group"]
            )
        finally:
            os.close(host_fd)
        with links.rtnl(self.config.host_netns) as host:
            host_index = links.set_up(host, host_name)
            links.add_addresses(host, host_index, [ipaddress.ip_interface(f"{gateway}/32")])
            links.add_route(host, host_index, Route(ip.network, None))
            host_state = links.link_state(host, host_name)
        links.set_up(pod, req.ifname, index)
        links.add_addresses(pod, index, [ip])
        links.add_route(pod, index, Route(ipaddress.ip_network(f"{gateway}/32"), None))
        if default:
            links.add_route(pod, index, Route(ipaddress.ip_network("0.0.0.0/0"), gateway), onlink=True)
        at = len(result["interfaces"])
        result["interfaces"] += [
            {"name": host_name, "mac": host_state.mac if host_state else ""},
            {"name": req.ifname, "mac": mac, "mtu": self.config.default_mtu, "sandbox": req.netns},
        ]
        result["ips"].append({"address": str(ip), "gateway": str(gateway), "interface": at + 1})
        if default:
            result["routes"].append({"dst": "0.0.0.0/0", "gw": str(gateway)})

    def _secondary(
        self, req: spec.Request, pod: Any, pod_fd: int, plan: InterfacePlan, group: int, result: dict[str, Any]
    ) -> None:
        if plan.kind == "veth":
            ipu_fd = links.open_netns(self.config.ipu_netns or OWN_NETNS)
            try:
                index = links.create_veth(pod, plan.name, plan.mac, plan.mtu, plan.peer, ipu_fd, group)
            finally:
                os.close(ipu_fd)
            with links.rtnl(self.config.ipu_netns) as ipu:
                links.set_up(ipu, plan.peer)
        else:
            with links.rtnl(self.config.host_netns) as host:
                links.create_macvlan(host, plan.peer, plan.name, plan.mac, plan.mtu, pod_fd, group)
            found = links.index_of(pod, plan.name)
            assert found is not None
            index = found
        links.set_up(pod, plan.name, index)
        links.add_addresses(pod, index, plan.ips)
        for route in plan.routes:
            # The default route replaces one an earlier plugin of a chain may
            # have set: isDefaultGW4/6 asks for it on this attachment.
            links.add_route(pod, index, route, onlink=route.gateway is not None,
                            replace=route.dst.prefixlen == 0)
        at = len(result["interfaces"])
        result["interfaces"].append({"name": plan.name, "mac": plan.mac, "mtu": plan.mtu, "sandbox": req.netns})
        for ip in plan.ips:
            entry: dict[str, Any] = {"address": str(ip), "interface": at}
            gateway = next((g for g in plan.gateways if g.version == ip.version), None)
            if gateway is not None:
                entry["gateway"] = str(gateway)
            result["ips"].append(entry)
        for route in plan.routes:
            doc = {"dst": str(route.dst)}
            if route.gateway is not None:
                doc["gw"] = str(route.gateway)
            result["routes"].append(doc)

    def _attach(self, pod: PodRef, plans: tuple[InterfacePlan, ...], record: dict[str, Any]) -> None:
        """Hand each veth port to the datapath. Ports are recorded first: detach
        is idempotent, so a rollback may take back ones never attached."""
        ports = [_port(pod, p) for p in plans if p.kind == "veth"]
        record["ports"] = [_port_doc(p) for p in ports]
        if self.datapath is None:
            return
        for port in ports:
            try:
                self.datapath.attach(port)
            except Exception as err:  # a plug-in: any failure is reported, never a traceback
                raise CniError(
                    Code.TRY_AGAIN_LATER, f"datapath could not attach {port.interface} ({port.representor}): {err}"
                ) from err

    def _invocation(self, record: Mapping[str, Any]) -> delegate.Invocation:
        return delegate.Invocation(
            container_id=record["containerID"],
            netns=record.get("netns") or "",
            ifname=record["ifname"],
            args=record.get("args", ""),
            path=tuple(record.get("path") or self.config.bin_dirs),
            host_netns=self.config.host_netns,
            runtime_config=record.get("runtimeConfig") or {},
        )

    # --- DEL / GC ------------------------------------------------------------

    def _del(self, req: spec.Request) -> None:
        record = self.store.read(req.network, req.container_id, req.ifname)
        if record is None:
            # Nothing known (a DEL without ADD, or a repeated DEL): still let a
            # delegated primary network release what it may hold (spec 2, DEL).
            if self.config.conf_dir is not None:
                self._delegate_del_unknown(req)
            return
        errors = self._undo(record)
        if errors:
            raise CniError(Code.TRY_AGAIN_LATER, "DEL left resources behind", "; ".join(errors))
        self._forget(record)

    def _delegate_del_unknown(self, req: spec.Request) -> None:
        try:
            conf = delegate.find_primary(self.config.conf_dir)  # type: ignore[arg-type]
        except CniError:
            return
        record = {"containerID": req.container_id, "netns": req.netns, "ifname": req.ifname,
                  "args": spec_args(req), "path": list(req.path), "runtimeConfig": runtime_config(req)}
        delegate.run_chain("DEL", conf, self._invocation(record), req.prev_result)

    def _gc(self, req: spec.Request) -> None:
        """Spec 2, GC: remove what no valid attachment owns, go on past errors
        and report them; forward GC to the delegated primary network."""
        valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
        errors: list[str] = []
        for stale in self.store.all():
            if stale.get("network") != req.network or (stale["containerID"], stale["ifname"]) in valid:
                continue
            with self._lock(stale["containerID"]):
                record = self.store.read(stale["network"], stale["containerID"], stale["ifname"])
                if record is None:
                    continue
                problems = self._undo(record)
                if problems:
                    errors += problems
                else:
                    self._forget(record)
        errors += self._sweep_unowned_links()
        errors += self._gc_primary(req)
        if errors:
            raise CniError(Code.TRY_AGAIN_LATER, "GC left stale resources behind", "; ".join(errors))

    def _sweep_unowned_links(self) -> list[str]:
        """Node-side veths named as this agent names them (prefix + attachment
        hash) that no record of any network owns: left behind by a record that
        was lost. The links are listed before the records are read, and an ADD
        writes its record before it creates a link, so one under way is safe."""
        found: dict[str | None, list[str]] = {}
        for netns in dict.fromkeys((self.config.ipu_netns, self.config.host_netns)):
            try:
                with links.rtnl(netns) as ipr:
                    found[netns] = [n for n in links.veth_names(ipr) if is_link_name(self.config.link_prefix, n)]
            except links.NetnsGone:
                continue
        owned = {(link["netns"], link["name"]) for r in self.store.all() for link in r.get("links", [])}
        errors: list[str] = []
        for netns, names in found.items():
            unowned = [n for n in names if (netns, n) not in owned]
            if not unowned:
                continue
            try:
                with links.rtnl(netns) as ipr:
                    for name in unowned:
                        log.warning("GC: removing %s, which no attachment record owns", name)
                        links.delete_link(ipr, name)
            except (OSError, NetlinkError, links.NetnsGone) as err:
                errors.append(f"delete unowned links in {netns or 'the agent namespace'}: {err}")
        return errors

    def _gc_primary(self, req: spec.Request) -> list[str]:
        """GC of the delegated primary conflist. Still valid there: what the
        runtime lists and every attachment this agent still delegates for."""
        if self.config.conf_dir is None:
            return []
        try:
            conf = delegate.find_primary(self.config.conf_dir)
        except CniError:
            return []
        valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
        valid |= {(r["containerID"], r["ifname"]) for r in self.store.all() if "delegate" in r}
        extra = {key: [{"containerID": c, "ifname": i} for c, i in sorted(valid)] for key in spec.VALID_ATTACHMENTS_KEYS}
        failures = delegate.run_network_verb("GC", conf, self._search_path(req.path), self.config.host_netns, extra)
        return [f"primary network GC: {err.msg}" for err in failures]

    def _undo(self, record: Mapping[str, Any]) -> list[str]:
        """Remove everything a record owns; keep going on errors and return them."""
        errors: list[str] = []
        if self.datapath is not None:
            for doc in record.get("ports", []):
                try:
                    self.datapath.detach(_port_from_doc(doc))
                except Exception as err:  # the datapath is a plug-in: report, keep releasing
                    errors.append(f"datapath detach {doc.get('representor')}: {err}")
        by_netns: dict[str | None, list[Mapping[str, Any]]] = {}
        for link in record.get("links", []):
            by_netns.setdefault(link["netns"], []).append(link)
        for netns, owned in by_netns.items():
            try:
                with links.rtnl(netns) as ipr:
                    if netns == record.get("netns") and record.get("group"):
                        # The pod side in one batch; veth peers go with it.
                        links.delete_group(ipr, record["group"])
                    for link in owned:
                        links.delete_link(ipr, link["name"], link.get("mac"))
            except links.NetnsGone:
                continue  # the namespace took its links with it
            except (OSError, NetlinkError) as err:
                errors.append(f"delete links in {netns or 'the agent namespace'}: {err}")
        if "delegate" in record and self.config.conf_dir is not None:
            try:
                conf = delegate.find_primary(self.config.conf_dir)
                delegate.run_chain("DEL", conf, self._invocation(record), record.get("delegateResult"))
            except CniError as err:
                errors.append(f"primary network DEL: {err.msg}")
        return errors

    def _forget(self, record: Mapping[str, Any]) -> None:
        self.store.delete(record["network"], record["containerID"], record["ifname"])
        with self._ipam_lock:
            if record.get("defaultIP"):
                self._used_ips.discard(str(record["defaultIP"]))
            key = (record["network"], record["containerID"])
            self._secondaries.get(key, set()).discard(record["ifname"])
            if not self._secondaries.get(key, True):
                del self._secondaries[key]

    # --- CHECK ----------------------------------------------------------------

    def _check(self, req: spec.Request) -> None:
        record = self.store.read(req.network, req.container_id, req.ifname)
        if record is None or record.get("phase") != READY:
            raise CniError(Code.UNKNOWN_CONTAINER, f"no attachment {req.container_id}/{req.ifname} on network {req.network}")
        problems = self._check_pod(req, record) + self._check_peers(record)
        if "delegate" in record and self.config.conf_dir is not None:
            conf = delegate.find_primary(self.config.conf_dir)
            try:
                delegate.run_chain("CHECK", conf, self._invocation(record), record.get("delegateResult"))
            except CniError as err:
                problems.append(err.msg)
        if problems:
            raise CniError(Code.CHECK_FAILED, "CHECK failed: " + "; ".join(problems))

    def _check_pod(self, req: spec.Request, record: Mapping[str, Any]) -> list[str]:
        expected = req.prev_result or record["result"]
        # Only what this plugin made: a delegated eth0 is checked by its own
        # plugins, and an earlier plugin of the chain checks its own.
        ours = {p["name"] for p in record.get("plans", [])}
        if "defaultIP" in record:
            ours.add(record["ifname"])
        problems: list[str] = []
        try:
            with links.rtnl(req.netns) as pod:
                for i, itf in enumerate(expected.get("interfaces", [])):
                    if itf.get("sandbox") != req.netns or itf.get("name") not in ours:
                        continue
                    problems += _check_link(pod, itf, [ip["address"] for ip in expected.get("ips", []) if ip.get("interface") == i])
                for plan in record.get("plans", []):
                    problems += _check_routes(pod, plan)
        except links.NetnsGone:
            problems.append(f"CNI_NETNS {req.netns} does not exist")
        return problems

    def _check_peers(self, record: Mapping[str, Any]) -> list[str]:
        problems = []
        for doc in record.get("ports", []):
            with links.rtnl(self.config.ipu_netns) as ipu:
                state = links.link_state(ipu, doc["representor"])
            if state is None or not state.up:
                problems.append(f"representor {doc['representor']} of {doc['interface']} is missing or down")
        return problems


# --- helpers -------------------------------------------------------------------


def pod_of(req: spec.Request) -> PodRef:
    """The pod named by CNI_ARGS; PodRef("", "") when CNI_ARGS names none."""
    missing = [k for k in ("K8S_POD_NAMESPACE", "K8S_POD_NAME") if not req.args.get(k)]
    if len(missing) == 2:
        return PodRef("", "")
    if missing:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS lacks {', '.join(missing)}")
    return PodRef(req.args["K8S_POD_NAMESPACE"], req.args["K8S_POD_NAME"], req.args.get("K8S_POD_UID", ""))


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


def _merge(result: dict[str, Any], other: Mapping[str, Any]) -> None:
    offset = len(result["interfaces"])
    result["interfaces"] += list(other.get("interfaces", []))
    for ip in other.get("ips", []):
        entry = dict(ip)
        if "interface" in entry:
            entry["interface"] += offset
        result["ips"].append(entry)
    result["routes"] += list(other.get("routes", []))
    if other.get("dns"):
        result["dns"] = dict(other["dns"])


def _plan_doc(p: InterfacePlan) -> dict[str, Any]:
    return {
        "name": p.name, "network": p.network, "attachment": p.attachment, "networkId": p.network_id,
        "kind": p.kind, "peer": p.peer, "mac": p.mac, "mtu": p.mtu,
        "ips": [str(ip) for ip in p.ips], "gateways": [str(g) for g in p.gateways],
        "routes": [str(r.dst) for r in p.routes],
        "default": p.default_gw4 or p.default_gw6,
    }


def _port(pod: PodRef, p: InterfacePlan) -> PortAttachment:
    return PortAttachment(
        pod_uid=pod.uid, namespace=pod.namespace, pod_name=pod.name, network=p.network,
        network_id=NetworkId(p.network_id), interface=p.name, representor=p.peer,
        ips=tuple(str(ip) for ip in p.ips), mac=p.mac, mtu=p.mtu,
    )


def _port_doc(p: PortAttachment) -> dict[str, Any]:
    return {
        "podUID": p.pod_uid, "namespace": p.namespace, "podName": p.pod_name, "network": p.network,
        "networkId": int(p.network_id), "interface": p.interface, "representor": p.representor,
        "ips": list(p.ips), "mac": p.mac, "mtu": p.mtu,
    }


def _port_from_doc(d: Mapping[str, Any]) -> PortAttachment:
    return PortAttachment(
        pod_uid=d["podUID"], namespace=d["namespace"], pod_name=d["podName"], network=d["network"],
        network_id=NetworkId(d["networkId"]), interface=d["interface"], representor=d["representor"],
        ips=tuple(d["ips"]), mac=d["mac"], mtu=d["mtu"],
    )


def _check_link(pod: Any, itf: Mapping[str, Any], addresses: list[str]) -> list[str]:
    state = links.link_state(pod, itf["name"])
    if state is None:
        return [f"interface {itf['name']} is missing"]
    problems = []
    if itf.get("mac") and state.mac.lower() != str(itf["mac"]).lower():
        problems.append(f"interface {itf['name']} has MAC {state.mac}, expected {itf['mac']}")
    if itf.get("mtu") and state.mtu != itf["mtu"]:
        problems.append(f"interface {itf['name']} has MTU {state.mtu}, expected {itf['mtu']}")
    if not state.up:
        problems.append(f"interface {itf['name']} is down")
    for address in addresses:
        if str(ipaddress.ip_interface(address)) not in state.addresses:
            problems.append(f"interface {itf['name']} lacks address {address}")
    return problems


def _check_routes(pod: Any, plan: Mapping[str, Any]) -> list[str]:
    index = links.index_of(pod, plan["name"])
    if index is None:
        return []  # reported as a missing interface already
    present = links.routes_via(pod, index)
    return [f"route to {dst} via {plan['name']} is missing" for dst in plan["routes"] if dst not in present]


def network_status(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pod's network-status entries (the project's format, see names.py)."""
    out: list[dict[str, Any]] = []
    result = record.get("result", {})
    eth0 = next((i for i, itf in enumerate(result.get("interfaces", []))
                 if itf.get("name") == record["ifname"] and itf.get("sandbox")), None)
    if eth0 is not None:
        ips = [ip for ip in result.get("ips", []) if ip.get("interface") == eth0]
        out.append({
            "podNetworkName": DEFAULT_NETWORK, "interfaceName": record["ifname"],
            "ips": [ip["address"] for ip in ips], "mac": result["interfaces"][eth0].get("mac", ""),
            "gateways": [ip["gateway"] for ip in ips if ip.get("gateway")],
            "default": not any(p["default"] for p in record.get("plans", [])),
        })
    for plan in record.get("plans", []):
        entry = {
            "podNetworkName": plan["network"], "interfaceName": plan["name"], "ips": plan["ips"],
            "mac": plan["mac"], "gateways": plan["gateways"], "default": plan["default"],
        }
        if plan.get("attachment"):
            entry["podNetworkAttachmentName"] = plan["attachment"]
        out.append(entry)
    return out
