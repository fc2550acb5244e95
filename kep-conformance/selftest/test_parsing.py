"""Parsers of what pods and agnhost answer: iproute2 JSON, per-network status,
netexec's /dial and /clientip replies."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping

import pytest

from suite import status as status_mod
from suite.binding import parse
from suite.connectivity import Target, check_answer
from suite.netinfo import NetInfoError, default_route, parse_addr, parse_addr_text, parse_routes, parse_routes_text
from suite.probes import ProbePod, ProbePods
from suite.transport import TransportError
from suite.truth import Observation, Seen

# `ip -j addr show` in an agnhost pod (iproute2 6.x), trimmed to the fields read.
IP_ADDR = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "operstate": "UNKNOWN",
     "address": "00:00:00:00:00:00", "addr_info": [
         {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifindex": 2, "ifname": "eth0", "link_index": 9, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "operstate": "UP", "address": "aa:bb:cc:00:00:01", "addr_info": [
         {"family": "inet", "local": "10.244.1.5", "prefixlen": 24, "scope": "global"},
         {"family": "inet6", "local": "fe80::a8bb:ccff:fe00:1", "prefixlen": 64, "scope": "link"}]},
    {"ifindex": 3, "ifname": "net1", "flags": ["BROADCAST", "MULTICAST"], "operstate": "DOWN",
     "address": "aa:bb:cc:00:00:02", "addr_info": [
         {"family": "inet", "local": "10.231.0.7", "prefixlen": 24, "scope": "global"},
         {"family": "inet6", "local": "fd00:235::7", "prefixlen": 64, "scope": "global"}]},
])
ROUTES = json.dumps([{"dst": "default", "gateway": "10.231.0.1", "dev": "net1"},
                     {"dst": "10.231.0.0/24", "dev": "net1", "protocol": "kernel", "scope": "link"}])


def test_ip_addr_keeps_global_addresses_and_the_up_flag() -> None:
    links = parse_addr(IP_ADDR)
    assert {i.ip for i in links["eth0"].addresses} == {ipaddress.ip_address("10.244.1.5")}
    assert links["eth0"].up and not links["net1"].up
    assert links["net1"].addresses == {ipaddress.ip_interface("10.231.0.7/24"),
                                       ipaddress.ip_interface("fd00:235::7/64")}
    assert not links["lo"].addresses


def test_routes_and_default_route() -> None:
    route = default_route(parse_routes(ROUTES))
    assert route is not None and (route.device, route.gateway) == ("net1", "10.231.0.1")
    assert default_route(parse_routes("[]")) is None


@pytest.mark.parametrize("text", ["sh: ip: not found", "{}", "[1]"])
def test_not_iproute2_json_is_refused(text: str) -> None:
    with pytest.raises(NetInfoError):
        parse_addr(text)


def test_status_annotation() -> None:
    text = json.dumps([{"podNetworkName": "default", "interfaceName": "eth0", "ips": ["10.244.1.5"]},
                       {"podNetworkName": "a", "interfaceName": "net1", "ips": ["10.231.0.7/24", "fd00::7/64"],
                        "mac": "aa:bb:cc:00:00:02"}])
    attached = status_mod.from_annotation(text, "k")
    a = status_mod.on(attached, "a")
    assert a.prefixed and a.address(4) == ipaddress.ip_address("10.231.0.7")
    assert a.address(6) == ipaddress.ip_address("fd00::7")
    assert not status_mod.on(attached, "default").prefixed
    with pytest.raises(status_mod.StatusError, match="expected one attachment to b"):
        status_mod.on(attached, "b")


@pytest.mark.parametrize("text,error", [
    ("nope", "not JSON"), ("{}", "JSON list"), ('[{"interfaceName": "x"}]', "podNetworkName"),
    ('[{"podNetworkName": "a", "interfaceName": "x", "ips": ["10.0.0.300"]}]', "10.0.0.300"),
])
def test_bad_status_is_named(text: str, error: str) -> None:
    with pytest.raises(status_mod.StatusError, match=error):
        status_mod.from_annotation(text, "k")


def test_answer_checks() -> None:
    connected = Observation(Seen.CONNECTED, "10.231.0.9:43211")
    assert check_answer(connected, Target("x"), ipaddress.ip_address("10.231.0.9")).seen is Seen.CONNECTED
    snat = check_answer(connected, Target("x"), ipaddress.ip_address("10.231.0.8"))
    assert snat.seen is Seen.BLOCKED and "SNAT" in snat.detail
    v6 = Observation(Seen.CONNECTED, "[fd00:235::7]:5555")
    assert check_answer(v6, Target("x"), ipaddress.ip_address("fd00:235::7")).seen is Seen.CONNECTED
    other = check_answer(Observation(Seen.CONNECTED, "o2-0"), Target("x", answer="o1-0"), None)
    assert other.seen is Seen.BLOCKED and "o2-0" in other.detail
    blocked = Observation(Seen.BLOCKED, "timeout")
    assert check_answer(blocked, Target("x", answer="o1-0"), None) == blocked


class FakeTransport:
    name = "fake"

    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Mapping[str, str]]] = []

    def get(self, namespace: str, pod: str, path: str, params: Mapping[str, str]) -> str:
        self.asked.append((path, dict(params)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def shell(self, namespace: str, pod: str, command: str) -> str:
        return ""


MULTINET = parse({"implementation": {k: "x" for k in ("organization", "project", "url", "version")} | {
    "contact": ["x"]}, "api": {"group": "g", "version": "v", "parameters": "none"},
    "pods": {"networks": {"annotation": "n"}, "status": {"annotation": "s"}}})


@pytest.mark.parametrize("answer,seen", [
    ('{"responses": ["b1"]}', Seen.CONNECTED),
    ('{"errors": ["dial tcp 10.0.0.2:8080: i/o timeout"]}', Seen.BLOCKED),
    ("<html>not netexec</html>", Seen.UNKNOWN),
    (TransportError("503 no endpoints"), Seen.UNKNOWN),
])
def test_dial_reading(answer: str | Exception, seen: Seen) -> None:
    transport = FakeTransport(answer)
    probes = ProbePods(None, MULTINET, transport, "agnhost", 1.0)  # type: ignore[arg-type]
    obs = probes.dial(ProbePod("ns", "a", "n1", ()), ipaddress.ip_address("10.0.0.2"), 8080)
    assert obs.seen is seen, obs
    path, params = transport.asked[0]
    assert path == "dial" and params == {"host": "10.0.0.2", "port": "8080", "request": "hostname",
                                         "protocol": "http", "tries": "1"}


# `ip addr show` as BusyBox prints it (no JSON; no "state" on every line).
BUSYBOX_ADDR = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue
    link/ether 2e:4a:1c:3b:77:10 brd ff:ff:ff:ff:ff:ff
    inet 10.244.1.3/24 brd 10.244.1.255 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::2c4a:1cff:fe3b:7710/64 scope link
       valid_lft forever preferred_lft forever
3: net1@if8: <BROADCAST,MULTICAST> mtu 1450 qdisc noqueue state DOWN
    link/ether 2e:4a:1c:3b:77:11 brd ff:ff:ff:ff:ff:ff
    inet 10.231.0.2/24 scope global net1
    inet6 fd00:235::2/64 scope global
"""


def test_ip_addr_text_as_busybox_prints_it() -> None:
    links = parse_addr_text(BUSYBOX_ADDR)
    assert sorted(links) == ["eth0", "lo", "net1"]
    assert links["eth0"].up and links["eth0"].mac == "2e:4a:1c:3b:77:10"
    assert links["eth0"].addresses == {ipaddress.ip_interface("10.244.1.3/24")}
    assert not links["net1"].up
    assert links["net1"].addresses == {ipaddress.ip_interface("10.231.0.2/24"),
                                       ipaddress.ip_interface("fd00:235::2/64")}
    with pytest.raises(NetInfoError):
        parse_addr_text("ip: applet not found")


def test_ip_route_text() -> None:
    routes = parse_routes_text("default via 10.231.0.1 dev gw0 \n10.231.0.0/24 dev gw0 scope link  src 10.231.0.2\n")
    route = default_route(routes)
    assert route is not None and (route.device, route.gateway) == ("gw0", "10.231.0.1")
    assert routes[1].destination == "10.231.0.0/24" and routes[1].gateway is None


class PathTransport(FakeTransport):
    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__("")
        self.answers = answers

    def get(self, namespace: str, pod: str, path: str, params: Mapping[str, str]) -> str:
        self.asked.append((path, dict(params)))
        return params.get("msg", "") if path == "echo" else self.answers[path]


@pytest.mark.parametrize("hostname,passes", [("a-1f2e3d4c", True), ("a", False), ("someone-else", False)])
def test_preflight_checks_it_reached_this_very_pod(hostname: str, passes: bool) -> None:
    """A same-named pod of another run or cluster answers with another hostname."""
    probes = ProbePods(None, MULTINET, PathTransport({"hostname": hostname}), "agnhost", 1.0)  # type: ignore[arg-type]
    pod = ProbePod("ns", "a", "n1", (), hostname="a-1f2e3d4c")
    if passes:
        probes.preflight(pod)
    else:
        with pytest.raises(pytest.skip.Exception, match=f"reached a pod named '{hostname}'"):
            probes.preflight(pod)


class ShellTransport(FakeTransport):
    """Answers every command with `output`, counting the commands it was given."""

    def __init__(self, name: str, output: str) -> None:
        super().__init__(output)
        self.name = name
        self.commands: list[str] = []

    def shell(self, namespace: str, pod: str, command: str) -> str:
        self.commands.append(command)
        return str(self.answer)


def test_routes_inside_go_over_the_inside_transport_only() -> None:
    """A pod whose default route the test moved is read over pods/exec, never the proxy."""
    proxy, inside = ShellTransport("proxy", "[]"), ShellTransport("exec", ROUTES)
    probes = ProbePods(None, MULTINET, proxy, "agnhost", 1.0, inside=inside)  # type: ignore[arg-type]
    pod = ProbePod("ns", "gw", "n1", ())
    route = default_route(probes.routes(pod, 4, inside=True))
    assert route is not None and route.device == "net1"
    assert proxy.commands == [] and inside.commands == ["ip -4 -j route show"]
    assert probes.routes(pod, 4) == [] and proxy.commands == ["ip -4 -j route show"]
