"""The invariants hack/chaos checks after each fault and at the end, read from
the cluster as it runs: the apiserver's pods and IPAllocations, each node's
agent records, links and nftables in its IPU namespace, the pods' own
interfaces (`ip -j addr` inside them) and the IPU target's tables (a
P4Runtime Read from the node's namespace, compared with what the agent's
compiler makes of the same objects and records).

Run as `python hack/chaos_checks.py p4read ADDRESS` it prints the target's
entries, one serialized TableEntry (hex) a line: the read runs inside a
node's network namespace (`ip netns exec`), where the target listens."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.compile.node import compile_node
from agent.compile.objects import network_ids
from agent.plan import is_link_name
from agent.store import StateStore
from datapath.client.datapath import port_entries
from datapath.entries import Entry, decode, describe
from kube import Kube, KubeError, Obj
from kube.kinds import IP_ALLOCATIONS
from kube.resources import ENDPOINT_SLICES, NAMESPACES, NETWORK_POLICIES, NODES, PODS, SERVICES
from multinet.cluster.containerd import ContainerdError
from multinet.cluster.nodes import NodePlan
from podnetwork import names
from podnetwork.names import NODE_PREFIX

TARGET = "127.0.0.1:9559"  # where deploy/overlays/local's IPU target listens, in the node's namespace


def running(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"
            and not p["spec"].get("hostNetwork") and not p["metadata"].get("deletionTimestamp")]


def network_status(pod: Obj) -> list[dict[str, Any]]:
    raw = (pod["metadata"].get("annotations") or {}).get(names.NETWORK_STATUS_ANNOTATION)
    return list(json.loads(raw)) if raw else []


def duplicates(pods: list[Obj]) -> dict[str, list[str]]:
    """network -> addresses held by more than one Running pod."""
    held: Counter[tuple[str, str]] = Counter()
    for pod in running(pods):
        for status in network_status(pod):
            for cidr in status.get("ips") or []:
                held[(status["podNetworkName"], cidr.split("/")[0])] += 1
    out: dict[str, list[str]] = {}
    for (network, address), count in held.items():
        if count > 1:
            out.setdefault(network, []).append(address)
    return out


def orphan_allocations(kube: Kube, pods: list[Obj]) -> list[str]:
    """IPAllocations whose owner (a pod not finished, or a Service for its VIP) is gone."""
    live = {p["metadata"]["uid"] for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")}
    live |= {s["metadata"]["uid"] for s in kube.list(SERVICES)}
    return sorted(a["metadata"]["name"] for a in kube.list(IP_ALLOCATIONS) if a["spec"]["podUID"] not in live)


def ipu_links(plan: NodePlan) -> set[str]:
    """The pods' representors in the node's IPU namespace: veths named as the agent names them."""
    out = subprocess.run(["ip", "-n", plan.ipu_ns, "-j", "-d", "link"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(out.stdout)
            if link.get("linkinfo", {}).get("info_kind") == "veth" and is_link_name(NODE_PREFIX, link["ifname"])}


def nft_ruleset(ns: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True,
                         check=True)
    return out.stdout


def node_leaks(plan: NodePlan, pods: list[Obj]) -> dict[str, list[str]]:
    """What a node keeps of pods that are gone: agent records, representor links,
    nftables names of links that no longer exist, pod network namespaces."""
    live = {p["metadata"]["uid"] for p in pods}
    records = StateStore(plan.root / "agent").all()
    kept = [r for r in records if r.pod.uid in live]
    representors = {port.representor for r in kept for port in r.ports}
    links = ipu_links(plan)
    # Representors of pods seen during the run (and of records kept) whose link is gone:
    # nftables must name none of them (nft prints interface names quoted).
    gone = (_seen_representors | {port.representor for r in records for port in r.ports}) - links
    ruleset = nft_ruleset(plan.ipu_ns)
    return {
        "records": sorted(f"{r.pod.namespace}/{r.pod.name}:{r.ifname}" for r in records if r.pod.uid not in live),
        "links": sorted(name for name in links if name not in representors),
        "nftables": sorted(n for n in gone if f'"{n}"' in ruleset),
        "netns": sorted(_stale_netns(plan, {r.netns for r in kept})),
    }


_seen_representors: set[str] = set()


def remember_representors(plan: NodePlan) -> None:
    """Called during the churn: deleted pods' representor names, to look for in nftables later."""
    for r in StateStore(plan.root / "agent").all():
        _seen_representors.update(port.representor for port in r.ports)


def _stale_netns(plan: NodePlan, recorded: set[str]) -> list[str]:
    """Pod network namespaces (containerd's mounts under the node's root) no sandbox uses."""
    used = set()
    for cid in plan.containerd.ctr("containers", "list", "--quiet", 'labels."io.cri-containerd.kind"==sandbox').split():
        try:
            spec = json.loads(plan.containerd.ctr("containers", "info", cid)).get("Spec") or {}
        except ContainerdError:
            continue  # removed since the listing
        used |= {ns.get("path") for ns in spec.get("linux", {}).get("namespaces", []) if ns.get("type") == "network"}
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if "/netns/cni-" in line.split()[4] and line.split()[4].startswith(str(plan.root))]
    return [m for m in set(mounted) if m not in used and m not in recorded]


def missing_interfaces(pod: Obj, addr_json: str) -> list[str]:
    """Interfaces (or their addresses) the pod's status names but `ip -j addr` inside lacks."""
    have = {i["ifname"]: {f"{a['local']}/{a['prefixlen']}" for a in i.get("addr_info", [])}
            for i in json.loads(addr_json)}
    out = []
    for status in network_status(pod):
        ifname = status.get("interfaceName", "")
        if ifname not in have:
            out.append(f"{status['podNetworkName']}: {ifname} missing")
        else:
            out += [f"{status['podNetworkName']}: {ifname} lacks {ip}" for ip in status.get("ips") or []
                    if ip not in have[ifname]]
    return out


def read_target(plan: NodePlan) -> list[Entry]:
    from finsy.proto import p4r

    out = subprocess.run(["ip", "netns", "exec", plan.host_ns, sys.executable, __file__, "p4read", TARGET],
                         capture_output=True, text=True, timeout=60, check=True)
    return [decode(p4r.TableEntry.FromString(bytes.fromhex(line))) for line in out.stdout.split()]


def desired_entries(kube: Kube, plan: NodePlan, pods: list[Obj]) -> list[Entry]:
    """What the node's agent should hold programmed: its recorded ports' entries (of
    pods that exist) and the policy/service/remote-route state compiled from the objects."""
    live = {p["metadata"]["uid"] for p in pods}
    ports = [port for r in StateStore(plan.root / "agent").all() if r.pod.uid in live for port in r.ports]
    state = compile_node(plan.name, pods=pods, namespaces=kube.list(NAMESPACES), nodes=kube.list(NODES),
                         services=kube.list(SERVICES), slices=kube.list(ENDPOINT_SLICES),
                         policies=kube.list(NETWORK_POLICIES), networks=network_ids(pods))
    out = {e.key: e for port in ports for e in port_entries(port)}
    out.update({e.key: e for e in state})
    return list(out.values())


def pods_without_entries(plan: NodePlan, pods: list[Obj], have: set[Any]) -> list[str]:
    """Running pods of the node whose secondary addresses have no route in its target."""
    from datapath.entries import Exact, prefix, version_of
    from datapath.pipeline import family_table

    ids = network_ids(pods)
    out = []
    for pod in running(pods):
        if pod["spec"].get("nodeName") != plan.name:
            continue
        for status in network_status(pod):
            network = status["podNetworkName"]
            for cidr in (status.get("ips") or []) if network in ids else []:
                address = cidr.split("/")[0]
                key = (family_table("route", version_of(address)),
                       (("network_id", Exact(ids[network])), ("dst", prefix(address))), 0)
                if key not in have:
                    out.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']} {network} {address}")
    return out


def check(kube: Kube, plans: list[NodePlan], interfaces: Callable[[Obj], list[str]],
          namespace: str) -> dict[str, Any]:
    """One pass of every invariant; each count is 0 when it holds."""
    pods = kube.list(PODS)
    leaks = {p.name: node_leaks(p, pods) for p in plans}
    datapath = {}
    unprogrammed: list[str] = []
    for plan in plans:
        have = {e.key: e for e in read_target(plan)}
        want = {e.key: e for e in desired_entries(kube, plan, pods)}
        datapath[plan.name] = {
            "missing": sorted(describe(want[k]) for k in want.keys() - have.keys()),
            "extra": sorted(describe(have[k]) for k in have.keys() - want.keys()),
            "different": sorted(describe(want[k]) for k in want.keys() & have.keys() if want[k] != have[k])}
        unprogrammed += pods_without_entries(plan, pods, set(have))
    ours = [p for p in running(pods) if p["metadata"]["namespace"] == namespace]
    missing = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": m for p in ours if (m := interfaces(p))}
    dups = duplicates(pods)
    orphans = orphan_allocations(kube, pods)
    return {
        "duplicates": sum(len(v) for v in dups.values()), "duplicate_addresses": dups,
        "orphan_allocations": len(orphans), "orphans": orphans,
        "leaks": sum(len(v) for node in leaks.values() for v in node.values()), "leaked": leaks,
        "pods_checked": len(ours), "missing_interfaces": sum(len(v) for v in missing.values()),
        "interfaces_missing": missing, "pods_without_datapath_entries": len(unprogrammed),
        "unprogrammed": unprogrammed,
        "datapath_mismatches": sum(len(v) for node in datapath.values() for v in node.values()),
        "datapath": datapath,
    }


def converge(kube: Kube, plans: list[NodePlan], interfaces: Callable[[Obj], list[str]], namespace: str,
             settle: float, sweep: float) -> dict[str, Any]:
    """Check until every invariant holds or `settle` s pass (the parts catch up after a
    fault); orphaned allocations get one sweep period of the controller beyond that."""
    start = time.monotonic()
    while True:
        try:
            result = check(kube, plans, interfaces, namespace)
        except (KubeError, OSError, subprocess.SubprocessError, ContainerdError) as err:
            result = {"error": str(err)[:500]}
        elapsed = time.monotonic() - start
        others_hold = "error" not in result and not any(result[k] for k in COUNTS if k != "orphan_allocations")
        if others_hold and not result["orphan_allocations"]:
            break
        if elapsed > settle + (sweep if others_hold else 0):
            break
        time.sleep(2.0)
    result["checked_after_s"] = round(time.monotonic() - start, 1)
    return result


COUNTS = ("duplicates", "orphan_allocations", "leaks", "missing_interfaces", "pods_without_datapath_entries",
          "datapath_mismatches")


def _p4read(address: str) -> None:
    from datapath.client.p4rt import P4RuntimeClient
    from datapath.entries import encode

    client = P4RuntimeClient(address)
    client.open()
    for e in client.read():
        print(encode(e).SerializeToString().hex())
    client.close()


if __name__ == "__main__" and sys.argv[1:2] == ["p4read"]:
    _p4read(sys.argv[2])
