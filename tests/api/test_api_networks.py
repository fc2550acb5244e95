"""KEP-3698 static validations of the pod networks annotation."""

from __future__ import annotations

import json

import pytest

from podnetwork.names import NETWORKS_ANNOTATION
from podnetwork.networks import (
    DEFAULT_NETWORKS,
    Network,
    NetworksError,
    attachment_network_errors,
    encode_networks,
    interface_name_error,
    parse_networks,
    pod_networks,
    static_errors,
)


def errors_of(entries: list[dict[str, object]], host_network: bool = False) -> list[str]:
    return static_errors(parse_networks(json.dumps(entries)), host_network)


def test_valid_list_has_no_errors() -> None:
    assert errors_of([
        {"podNetworkName": "default", "interfaceName": "eth0", "isDefaultGW4": True},
        {"podNetworkName": "blue", "interfaceName": "net1", "isDefaultGW6": True},
        {"podNetworkAttachmentName": "fast"},
    ]) == []


def test_network_referenced_twice() -> None:
    errs = errors_of([{"podNetworkName": "blue"}, {"podNetworkName": "blue"}])
    assert errs == [f"annotation {NETWORKS_ANNOTATION}[1].podNetworkName: 'blue' is already referenced by entry 0"]


def test_attachment_referenced_twice() -> None:
    errs = errors_of([{"podNetworkAttachmentName": "a"}, {"podNetworkAttachmentName": "a"}])
    assert len(errs) == 1 and "[1].podNetworkAttachmentName" in errs[0]


@pytest.mark.parametrize("entry", [{}, {"podNetworkName": "a", "podNetworkAttachmentName": "b"}])
def test_exactly_one_reference(entry: dict[str, object]) -> None:
    errs = errors_of([entry])
    assert errs == [f"annotation {NETWORKS_ANNOTATION}[0]: exactly one of podNetworkName or "
                    "podNetworkAttachmentName must be set"]


def test_interface_names_unique() -> None:
    errs = errors_of([{"podNetworkName": "a", "interfaceName": "net1"},
                      {"podNetworkName": "b", "interfaceName": "net1"}])
    assert errs == [f"annotation {NETWORKS_ANNOTATION}[1].interfaceName: 'net1' is already used by entry 0"]


@pytest.mark.parametrize("name", ["a" * 16, ".", "..", "a/b", "a b", "a\tb", "a:b"])
def test_invalid_interface_names(name: str) -> None:
    errs = errors_of([{"podNetworkName": "a", "interfaceName": name}])
    assert len(errs) == 1 and errs[0].startswith(f"annotation {NETWORKS_ANNOTATION}[0].interfaceName: ")


def test_empty_interface_name_rejected_by_length() -> None:
    assert interface_name_error("") is not None
    assert interface_name_error("a" * 15) is None


@pytest.mark.parametrize("flag", ["isDefaultGW4", "isDefaultGW6"])
def test_one_default_gateway_per_family(flag: str) -> None:
    errs = errors_of([{"podNetworkName": "a", flag: True}, {"podNetworkName": "b", flag: True},
                      {"podNetworkName": "c", flag: True}])
    assert [e.split(":")[0] for e in errs] == [f"annotation {NETWORKS_ANNOTATION}[1].{flag}",
                                               f"annotation {NETWORKS_ANNOTATION}[2].{flag}"]


def test_host_network_pod_must_not_have_networks() -> None:
    errs = errors_of([{"podNetworkName": "default"}], host_network=True)
    assert errs == [f"annotation {NETWORKS_ANNOTATION}: networks must not be set on a hostNetwork pod"]


def test_every_error_is_reported_at_once() -> None:
    errs = errors_of([{"podNetworkName": "a", "interfaceName": "x" * 20, "isDefaultGW4": True},
                      {"podNetworkName": "a", "isDefaultGW4": True}], host_network=True)
    assert len(errs) == 4


@pytest.mark.parametrize("text,needle", [
    ("not json", "invalid JSON"),
    ("{}", "is not of type 'array'"),
    ("[]", "should be non-empty"),
    ('[{"podNetworkName": 3}]', "[0][podNetworkName]: 3 is not of type 'string'"),
    ('[{"podNetwork": "a"}]', "Additional properties are not allowed"),
    ('[{"podNetworkName": "a", "isDefaultGW4": "yes"}]', "[0][isDefaultGW4]"),
])
def test_schema_errors(text: str, needle: str) -> None:
    with pytest.raises(NetworksError) as exc:
        parse_networks(text)
    assert needle in str(exc.value)


def test_auto_population() -> None:
    assert pod_networks({}, host_network=False) == DEFAULT_NETWORKS
    assert pod_networks(None, host_network=True) == ()


def test_pod_networks_raises_with_all_errors() -> None:
    text = json.dumps([{"podNetworkName": "a"}, {"podNetworkName": "a"}])
    with pytest.raises(NetworksError) as exc:
        pod_networks({NETWORKS_ANNOTATION: text}, host_network=False)
    assert len(exc.value.errors) == 1


def test_attachments_resolving_to_one_network() -> None:
    nets = (Network(pod_network_name="blue"), Network(pod_network_attachment_name="att"))
    assert attachment_network_errors(nets, {"att": "blue"}) == [
        f"annotation {NETWORKS_ANNOTATION}[1]: PodNetwork 'blue' is already referenced by entry 0"]
    assert attachment_network_errors(nets, {"att": "red"}) == []


def test_encode_round_trip() -> None:
    nets = (Network(pod_network_name="a", interface_name="n1", is_default_gw4=True),
            Network(pod_network_attachment_name="b", is_default_gw6=True))
    assert parse_networks(encode_networks(nets)) == nets


@pytest.mark.parametrize("ifname", ["net0", "eth1", "default"])
def test_default_network_interface_is_eth0_or_unset(ifname: str) -> None:
    errs = errors_of([{"podNetworkName": "default", "interfaceName": ifname}, {"podNetworkName": "blue"}])
    assert len(errs) == 1 and errs[0].startswith(f"annotation {NETWORKS_ANNOTATION}[0].interfaceName: ")
    assert "eth0" in errs[0]
    assert errors_of([{"podNetworkName": "default", "interfaceName": "eth0"}]) == []
    assert errors_of([{"podNetworkName": "default"}]) == []


def test_eth0_is_reserved_for_default_network_when_referenced() -> None:
    errs = errors_of([{"podNetworkName": "default"}, {"podNetworkName": "blue", "interfaceName": "eth0"}])
    assert len(errs) == 1 and errs[0].startswith(f"annotation {NETWORKS_ANNOTATION}[1].interfaceName: ")
    errs = errors_of([{"podNetworkName": "default", "interfaceName": "eth0"},
                      {"podNetworkName": "blue", "interfaceName": "eth0"}])
    assert len(errs) == 1 and "[1].interfaceName" in errs[0]
    # Without the default network (KEP story #6), a secondary network may be eth0.
    assert errors_of([{"podNetworkName": "blue", "interfaceName": "eth0"}]) == []


def test_interface_name_length_counts_bytes() -> None:
    """IFNAMSIZ is bytes: eight two-byte characters are 16 bytes, one too many."""
    assert interface_name_error("\u00e9" * 7) is None
    why = interface_name_error("\u00e9" * 8)
    assert why is not None and "16 bytes" in why
    assert errors_of([{"podNetworkName": "a", "interfaceName": "\u00e9" * 8}])


def test_interface_name_without_nul() -> None:
    assert interface_name_error("a\u0000b") is not None
