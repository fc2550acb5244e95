"""The node agent: does the work of each CNI verb the shim forwards.

Each verb is a short orchestration over the record (agent.record), the eth0
strategy of the attachment (agent.eth0), the secondary links
(agent.secondary) and the datapath. ADD journals before it creates and
rolls back on any failure; DEL and GC treat "already gone" as done, keep
going past errors and report them (spec 2).

Libraries only: the pod source, the reporter and the datapath are passed
in; agent.cli wires them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from agent import check, links, secondary
from agent.eth0 import DelegatedEth0, Eth0, NoEth0, RoutedEth0, made_earlier, pod_of, runtime_config, spec_args
from agent.faults import Faults
from agent.plan import InterfacePlan, link_group, plan_interfaces
from agent.record import AttachmentRecord, Eth0Mode, OwnedLink, Phase, PlannedInterface, PodRef
from agent.results import Result, add_secondary, empty_result, merge, network_status, port_of
from agent.sources import PodNetworking, PodSource, Reporter
from agent.store import StateStore
from agent.sweep import sweep_unowned_links
from cni import spec
from cni.result import render_result
from cni.spec import Code, CniError
from datapath.client.p4rt import WriteError
from datapath.ports import Datapath, PortAttachment
from podnetwork.names import NODE_PREFIX

log = logging.getLogger(__name__)


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


class Agent:
    def __init__(self, config: NodeConfig, pods: PodSource, reporter: Reporter | None = None,
                 datapath: Datapath | None = None, faults: Faults = Faults()) -> None:
        self.config = config
        self.pods = pods
        self.reporter = reporter
        self.datapath = datapath
        self.faults = faults
        self.store = StateStore(config.state_dir)
        # Striped per-container locks: bounded memory however many pods come and go.
        self._locks = tuple(threading.Lock() for _ in range(256))
        records = self._at_start = self.store.all()  # read once: recover() and recorded_ports() use them too
        self.sessions = links.Sessions((None, config.ipu_netns, config.host_netns))
        self.routed = (RoutedEth0(config.pod_cidr, config.host_netns, config.link_prefix, config.default_mtu,
                                  records, self.sessions)
                       if config.pod_cidr is not None and config.conf_dir is None else None)
        self.delegated = (DelegatedEth0(config.conf_dir, config.host_netns, config.bin_dirs)
                          if config.conf_dir is not None else None)
        self._eth0: dict[Eth0Mode, Eth0] = {mode: NoEth0() for mode in Eth0Mode}
        if self.routed is not None:
            self._eth0[Eth0Mode.ROUTED] = self.routed
        if self.delegated is not None:
            self._eth0[Eth0Mode.DELEGATED] = self.delegated
        # (network, container id) -> interface names of its attachments that
        # made the pod's secondary interfaces (see _has_secondaries): kept in
        # memory from the records, not read from every record on each ADD.
        self._secondaries_lock = threading.Lock()
        self._secondaries: dict[tuple[str, str], set[str]] = {}
        for r in records:
            if r.plans:
                self._secondaries.setdefault((r.network, r.container_id), set()).add(r.ifname)
        # (container id, CNI_IFNAME) -> the network holding it. An attachment's
        # links are named by these two alone, so another network's ADD of the
        # pair must be refused before it journals: its rollback would delete
        # the holder's links. Each key changes only under its container's lock.
        self._ifnames = {(r.container_id, r.ifname): r.network for r in records}
        self.macvlan_supported = links.kernel_has_link_kind("macvlan", config.link_prefix)

    # --- entry -----------------------------------------------------------

    def recover(self) -> int:
        """At start: undo every ADD a previous run left half-made and every
        attachment whose pod's namespace is gone (its DEL found no agent). Not
        through the datapath: it learns the kept ports before its first sync,
        which removes all others' entries (a detach now would sync knowing no port)."""
        self.store.sweep_temp()
        kept = {r.key: r for r in self._at_start if r.phase == Phase.READY and (not r.netns or links.netns_mounted(r.netns))}
        for record in (r for r in self._at_start if r.key not in kept):
            gone = "interrupted ADD" if record.phase == Phase.ADDING else f"attachment ({record.netns} is gone)"
            log.warning("undoing %s of %s/%s", gone, record.container_id, record.ifname)
            self._undo(record, datapath=False)
            self._forget(record)
        undone, self._at_start = len(self._at_start) - len(kept), list(kept.values())
        return undone

    def recorded_ports(self) -> list[PortAttachment]:
        """Every port of a completed ADD, for a datapath that (re)starts: it must
        know them before it reconciles, or it would remove their entries."""
        return [p for r in self._at_start for p in r.ports]

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
        except (OSError, links.NetlinkError, ValueError, LookupError) as err:
            log.exception("%s %s failed", request.command, request.container_id)
            return 1, CniError(Code.INTERFACE_FAILURE, f"{request.command} failed: {err}").to_result(request.version)

    def caller_left(self, env: Mapping[str, str], stdin: bytes | str) -> None:
        """An ADD done after its caller left: the runtime counts it failed, and the
        DEL it sends for that may have overtaken the ADD here: DEL it now."""
        request = spec.parse_request(env, stdin)
        if request.command == "ADD":
            log.warning("ADD of %s/%s: its caller left before the result; undoing it",
                        request.container_id, request.ifname)
            with self._lock(request.container_id):
                self._del(request)  # CniError: the record stays for the runtime's DEL or GC

    def _dispatch(self, req: spec.Request) -> Any:
        if req.command == "VERSION":
            return spec.version_result(req.version)
        if req.command == "STATUS":
            return self._status(req.path)
        if req.command == "GC":
            return self._gc(req)
        with self._lock(req.container_id):
            if req.command == "ADD":
                return render_result(self._add(req), req.version)
            return self._del(req) if req.command == "DEL" else self._check(req)

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
        if self.delegated is not None:
            self.delegated.status(path)  # spec 2, STATUS: a plugin that delegates ADD asks its delegates

    # --- ADD -----------------------------------------------------------------

    def _add(self, req: spec.Request) -> Result:
        existing = self.store.read(req.network, req.container_id, req.ifname)
        if existing is not None and existing.phase == Phase.READY and existing.netns == req.netns:
            # Spec 2, ADD: an interface of the requested name that already
            # exists is an error (the runtime must DEL before adding again).
            raise CniError(
                Code.INTERFACE_FAILURE,
                f"container {req.container_id} already has interface {req.ifname} on network {req.network}",
                "ADD without an intervening DEL",
            )
        holder = self._ifnames.get((req.container_id, req.ifname), req.network)
        if holder != req.network:
            raise CniError(Code.INTERFACE_FAILURE, f"container {req.container_id} already has interface "
                           f"{req.ifname} on network {holder}", "CNI_IFNAME is taken by another network")
        if existing is not None:
            self._remove(existing)
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
        made = [record]  # the latest record: what a rollback must remove

        def rollback(kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
            self._remove(made[-1])
            if reporter is not None and isinstance(err, Exception):
                reporter.failed(pod, f"{req.command} {req.ifname}: {err}")

        with ExitStack() as undo:
            undo.push(rollback)
            record, result = self._create(req, record, plans)
            made.append(record := dataclasses.replace(record, ports=tuple(port_of(pod, p) for p in plans
                                                                           if p.kind == "veth")))
            self._attach(record.ports)
            record = dataclasses.replace(record, phase=Phase.READY, result=result)
            self.store.write(record)
            undo.pop_all()
        if reporter is not None:
            reporter.attached(pod, network_status(record))
        return result

    def _has_secondaries(self, req: spec.Request) -> bool:
        """Whether another attachment of this container to this network (another
        CNI_IFNAME, spec 2: allowed) already made the pod's secondary interfaces:
        they are the pod's, made once; this attachment adds its own interface only."""
        with self._secondaries_lock:
            return bool(self._secondaries.get((req.network, req.container_id), set()) - {req.ifname})

    def _plan(self, req: spec.Request, networking: PodNetworking) -> tuple[InterfacePlan, ...]:
        try:
            plans = plan_interfaces(req.container_id, networking.allocations, networking.params,
                                    self.config.link_prefix)
        except ValueError as err:
            raise CniError(Code.INVALID_CONFIG, str(err)) from None
        for plan in plans:
            if plan.name == req.ifname:
                raise CniError(Code.INVALID_CONFIG,
                               f"interfaceName {plan.name!r} of network {plan.network} clashes with CNI_IFNAME")
            if plan.kind == "macvlan" and not self.macvlan_supported:
                raise CniError(Code.INVALID_CONFIG,
                               f"interfaceKind macvlan of network {plan.network} is not supported by this kernel")
        return plans

    def _mode_for(self, req: spec.Request) -> Eth0Mode:
        if made_earlier(req):
            return Eth0Mode.CHAINED  # the plugin that made CNI_IFNAME owns it
        if self.delegated is not None:
            return Eth0Mode.DELEGATED
        return Eth0Mode.ROUTED if self.routed is not None else Eth0Mode.NONE

    def _journal(self, req: spec.Request, pod: PodRef, plans: tuple[InterfacePlan, ...]) -> AttachmentRecord:
        """Write the ADD's intent before touching anything (see agent.record)."""
        owned = tuple(OwnedLink(req.netns, p.name, p.mac) for p in plans)
        owned += tuple(OwnedLink(self.config.ipu_netns, p.peer) for p in plans if p.kind == "veth")
        mode = self._mode_for(req)
        record = AttachmentRecord(
            network=req.network, container_id=req.container_id, ifname=req.ifname, netns=req.netns,
            pod=pod, mode=mode, group=link_group(req.network, req.container_id, req.ifname), links=owned,
            plans=tuple(PlannedInterface.of(p) for p in plans), args=spec_args(req),
            path=tuple(req.path or self.config.bin_dirs), runtime_config=runtime_config(req),
        )
        eth0 = self._eth0[mode]
        record = eth0.journal(req, record)
        try:
            self.store.write(record)
        except BaseException:
            eth0.release(record)
            raise
        self._ifnames[(req.container_id, req.ifname)] = req.network
        if plans:
            with self._secondaries_lock:
                self._secondaries.setdefault((req.network, req.container_id), set()).add(req.ifname)
        return record

    def _create(self, req: spec.Request, record: AttachmentRecord,
                plans: tuple[InterfacePlan, ...]) -> tuple[AttachmentRecord, Result]:
        result = empty_result()
        if req.prev_result is not None:
            merge(result, req.prev_result)  # chained after another plugin: its result first
        try:
            pod_fd = links.open_netns(req.netns)
        except links.NetnsGone as err:
            raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_NETNS {req.netns}: {err}") from None
        try:
            with self.sessions.of(req.netns) as session:
                pod = links.PodNetns(session, pod_fd)
                made = self._eth0[record.mode].create(req, record, pod, not any(p.default_gw4 for p in plans),
                                                      result)
                if made != record:  # e.g. a delegate's result, which its DEL needs after a crash
                    self.store.write(record := made)
                self.faults.crash_point("eth0")
                secondary.create(plans, pod, record.group, self.sessions, self.config.ipu_netns,
                                 self.config.host_netns)
                for plan in plans:
                    add_secondary(result, plan, req.netns)
                self.faults.crash_point("links")
        finally:
            os.close(pod_fd)
        return record, result

    def _attach(self, ports: tuple[PortAttachment, ...]) -> None:
        """Hand each veth port to the datapath. The record lists them first:
        detach is idempotent, so a rollback may take back ones never attached."""
        if self.datapath is None:
            return
        for port in ports:
            try:
                self.datapath.attach(port)
            except Exception as err:  # a plug-in: any failure is reported, never a traceback
                message = f"datapath could not attach {port.interface} ({port.representor}): {err}"
                if isinstance(err, WriteError) and err.full_tables and self.reporter is not None:
                    self.reporter.table_full(port.network, f"{port.namespace}/{port.pod_name}: {message}")
                raise CniError(Code.TRY_AGAIN_LATER, message) from err

    # --- DEL / GC ------------------------------------------------------------

    def _del(self, req: spec.Request) -> None:
        record = self.store.read(req.network, req.container_id, req.ifname)
        if record is None:
            # Nothing known (a DEL without ADD, or a repeated DEL): still let a
            # delegated primary network release what it may hold (spec 2, DEL).
            if self.delegated is not None:
                self.delegated.del_unknown(req)
            return
        errors = self._undo(record)
        if errors:
            raise CniError(Code.TRY_AGAIN_LATER, "DEL left resources behind", "; ".join(errors))
        self._forget(record)

    def _gc(self, req: spec.Request) -> None:
        """Spec 2, GC: remove what no valid attachment owns, go on past errors
        and report them; forward GC to the delegated primary network."""
        valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
        errors: list[str] = []
        for stale in self.store.all():
            if stale.network != req.network or (stale.container_id, stale.ifname) in valid:
                continue
            with self._lock(stale.container_id):
                record = self.store.read(*stale.key)
                if record is None:
                    continue
                problems = self._undo(record)
                if problems:
                    errors += problems
                else:
                    self._forget(record)
        errors += sweep_unowned_links(self.store.all, self.config.link_prefix,
                                      (self.config.ipu_netns, self.config.host_netns))
        if self.delegated is not None:
            errors += self.delegated.gc(req, [r for r in self.store.all() if r.mode == Eth0Mode.DELEGATED])
        if errors:
            raise CniError(Code.TRY_AGAIN_LATER, "GC left stale resources behind", "; ".join(errors))

    def _remove(self, record: AttachmentRecord) -> None:
        """Undo and forget, whatever the undo reports (an ADD rolled back or recovered)."""
        self._undo(record)
        self._forget(record)

    def _undo(self, record: AttachmentRecord, datapath: bool = True) -> list[str]:
        """Remove everything a record owns; keep going on errors and return them."""
        errors: list[str] = []
        if datapath and self.datapath is not None:
            for port in record.ports:
                try:
                    self.datapath.detach(port)
                except Exception as err:  # the datapath is a plug-in: report, keep releasing
                    errors.append(f"datapath detach {port.representor}: {err}")
        by_netns: dict[str | None, list[OwnedLink]] = {}
        for link in record.links:
            by_netns.setdefault(link.netns, []).append(link)
        for netns, owned in by_netns.items():
            try:
                links.delete_owned(self.sessions, netns, record.group if netns == record.netns else 0, owned)
            except links.NetnsGone:
                continue  # the namespace took its links with it
            except (OSError, links.NetlinkError) as err:
                errors.append(f"delete links in {netns or 'the agent namespace'}: {err}")
        return errors + self._eth0[record.mode].undo(record)

    def _forget(self, record: AttachmentRecord) -> None:
        self.store.delete(*record.key)
        self._eth0[record.mode].release(record)
        if self._ifnames.get(record.key[1:]) == record.network:
            del self._ifnames[record.key[1:]]
        with self._secondaries_lock:
            key = (record.network, record.container_id)
            self._secondaries.get(key, set()).discard(record.ifname)
            if not self._secondaries.get(key, True):
                del self._secondaries[key]

    # --- CHECK ----------------------------------------------------------------

    def _check(self, req: spec.Request) -> None:
        record = self.store.read(req.network, req.container_id, req.ifname)
        if record is None or record.phase != Phase.READY:
            raise CniError(Code.UNKNOWN_CONTAINER,
                           f"no attachment {req.container_id}/{req.ifname} on network {req.network}")
        problems = (check.pod_side(req.netns, req.prev_result or record.result or {}, record)
                    + check.representors(self.config.ipu_netns, record) + self._eth0[record.mode].check(record))
        if problems:
            raise CniError(Code.CHECK_FAILED, "CHECK failed: " + "; ".join(problems))

