"""The checked-in CRDs are exactly what the one definition generates."""

from __future__ import annotations

from podnetwork import crds


def test_checked_in_crds_match_generation() -> None:
    generated = crds.all_crds()
    on_disk = {p.name for p in crds.CRD_DIR.glob("*.yaml")}
    assert on_disk == set(generated)
    for name, manifest in generated.items():
        assert (crds.CRD_DIR / name).read_text() == crds.render(manifest), (
            f"{name} is stale: run python -m podnetwork.crds --write")


def test_kep_fields_and_rules() -> None:
    pn = crds.all_crds()["podnetworks.yaml"]["spec"]
    version = pn["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert version["subresources"] == {"status": {}}
    assert schema["spec"]["properties"]["enabled"]["default"] is True
    assert schema["spec"]["properties"]["provider"]["minLength"] == 1
    assert schema["spec"]["properties"]["provider"]["maxLength"] == 253
    conds = schema["status"]["properties"]["conditions"]
    assert conds["maxItems"] == 5 and conds["x-kubernetes-list-type"] == "map"
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Provider", "Age"]
    assert pn["names"]["shortNames"] == ["pn"] and pn["scope"] == "Cluster"
