"""CNI results (spec section 5): checked on the way in, rendered per version on the way out.

Standard library only, and light at import like cni.spec (the shim imports it).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def version_key(version: str) -> tuple[int, ...]:
    """"1.0.0" -> (1, 0, 0), for ordering versions."""
    return tuple(int(part) for part in version.split("."))


def normalise_result(raw: Any) -> dict[str, Any]:
    """Check a result (any supported version) and return it in the 1.1.0 shape.

    Raises ValueError whose text is the path of the bad field, e.g. ".ips[0].address".
    """
    if not isinstance(raw, dict):
        raise ValueError(" must be an object")
    interfaces = _list_of_objects(raw, "interfaces")
    for i, itf in enumerate(interfaces):
        if not isinstance(itf.get("name"), str):
            raise ValueError(f".interfaces[{i}].name must be a string")
    ips = _list_of_objects(raw, "ips")
    for i, ip in enumerate(ips):
        _check_cidr(ip.get("address"), f".ips[{i}].address")
        index = ip.get("interface")
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(interfaces)
        ):
            raise ValueError(f".ips[{i}].interface must index interfaces")
    routes = _list_of_objects(raw, "routes")
    for i, route in enumerate(routes):
        _check_cidr(route.get("dst"), f".routes[{i}].dst")
    out = {k: v for k, v in raw.items() if k not in ("cniVersion",)}
    out["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in ips]
    return out


def _list_of_objects(raw: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f".{key} must be a list of objects")
    return value


def _check_cidr(value: Any, where: str) -> None:
    import ipaddress  # only here: see cni.spec's module note on start time

    if not isinstance(value, str):
        raise ValueError(f"{where} must be a CIDR string")
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"{where} {value!r} is not a CIDR") from None


# Fields each result version knows (spec 5 and the 1.1 upgrade notes).
_V11_INTERFACE_ONLY = ("mtu", "socketPath", "pciID")
_V11_ROUTE_ONLY = ("mtu", "advmss", "priority", "table", "scope")


def render_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A 1.1.0-shaped result, rendered for the caller's cniVersion."""
    old = version_key(version) < (1, 1, 0)
    interfaces = [
        {k: v for k, v in itf.items() if not (old and k in _V11_INTERFACE_ONLY)}
        for itf in result.get("interfaces", [])
    ]
    ips = [dict(ip) for ip in result.get("ips", [])]
    if version == "0.4.0":
        for ip in ips:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    routes = [
        {k: v for k, v in r.items() if not (old and k in _V11_ROUTE_ONLY)}
        for r in result.get("routes", [])
    ]
    out: dict[str, Any] = {"cniVersion": version, "interfaces": interfaces, "ips": ips}
    if routes:
        out["routes"] = routes
    out["dns"] = dict(result.get("dns", {}))
    return out
