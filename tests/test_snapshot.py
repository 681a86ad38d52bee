"""Snapshot load/save and the errors a broken snapshot gives."""

from __future__ import annotations

import gzip
import json

import pytest

from auditor.errors import SnapshotError
from auditor.sample import SAMPLE_SNAPSHOT
from auditor.sample.generate import build_sample_estate
from auditor.snapshot import (
    SCHEMA_VERSION,
    Snapshot,
    Source,
    load_snapshot,
    make_resource,
    merge_snapshots,
    save_snapshot,
)


def small(source="vc1") -> Snapshot:
    return Snapshot(collected_at="2026-11-20T06:00:00Z",
                    sources=[Source(id=source, cloud="vsphere", kind="vcenter", resource_count=1)],
                    resources=[make_resource(id=f"{source}/host-1", name="esx01", cloud="vsphere",
                                             type="HostSystem", source=source,
                                             native={"summary": {"config": {"product": {"version": "8.0.2"}}}})])


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"snap{suffix}"
    save_snapshot(small(), path)
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    loaded = load_snapshot(path)
    assert loaded.resources == small().resources
    assert loaded.sources[0].id == "vc1" and not loaded.incomplete


def test_azure_types_are_lower_cased_on_load(tmp_path):
    document = small().as_dict()
    document["resources"].append({"id": "/subscriptions/s/x", "name": "x", "cloud": "azure",
                                  "type": "Microsoft.Network/networkSecurityGroups", "source": "s"})
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document))
    resource = load_snapshot(path).resources[1]
    assert resource["type"] == "microsoft.network/networksecuritygroups" and resource["tags"] == {}


@pytest.mark.parametrize("content, message", [
    (b"not json", "not a snapshot: invalid JSON"),
    (b"\xff\xfe", "not a snapshot: not UTF-8 JSON"),
    (b"[]", "not an auditor snapshot"),
    (b'{"kind": "auditor.snapshot"}', "snapshot has no integer schema_version"),
    (json.dumps({"kind": "auditor.snapshot", "schema_version": SCHEMA_VERSION + 1}).encode(),
     f"snapshot schema_version {SCHEMA_VERSION + 1} is newer than this auditor reads"),
    (json.dumps({"kind": "auditor.snapshot", "schema_version": 1, "collected_at": "x",
                 "sources": [], "resources": [{"id": "a"}]}).encode(), "resources[0] has no text field 'name'"),
    (json.dumps({"kind": "auditor.snapshot", "schema_version": 1, "collected_at": "x", "sources": [],
                 "resources": [{"id": "a", "name": "a", "type": "t", "source": "s", "cloud": "aws"}]}).encode(),
     "resources[0] (a): cloud must be one of vsphere, azure"),
    (b"\x1f\x8bnot gzip", "broken gzip data"),
    (json.dumps({"kind": "auditor.snapshot", "schema_version": 1, "collected_at": "x",
                 "sources": [{"id": "v" * 1025, "cloud": "vsphere", "kind": "vcenter"}], "resources": []}).encode(),
     "sources[0].id is longer than 1024 characters"),
    (json.dumps({"kind": "auditor.snapshot", "schema_version": 1, "collected_at": "x", "sources": [],
                 "resources": [{"id": "a", "name": "a", "type": "t", "source": "v" * 1025, "cloud": "vsphere"}]}
                ).encode(), "resources[0] (a): its source is longer than 1024 characters"),
])
def test_broken_snapshots(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    assert caught.value.one_line().startswith(f"{path}")
    assert message in caught.value.one_line()


def test_a_source_id_up_to_the_limit_is_read(tmp_path):
    """The near miss of the two limits above: 1,024 characters, listed or named alone."""
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"kind": "auditor.snapshot", "schema_version": 1, "collected_at": "x",
                                "sources": [{"id": "v" * 1024, "cloud": "vsphere", "kind": "vcenter"}],
                                "resources": [{"id": "a", "name": "a", "type": "t", "source": "w" * 1024,
                                               "cloud": "vsphere"}]}))
    assert [source.id for source in load_snapshot(path).sources] == ["v" * 1024, "w" * 1024]


def test_missing_file(tmp_path):
    with pytest.raises(SnapshotError, match="snapshot file not found"):
        load_snapshot(tmp_path / "nope.json")


def test_merge_refuses_the_same_resource_twice(tmp_path):
    a, b = small(), small("vc2")
    b.resources[0]["id"] = "vc1/host-1"
    a.origin, b.origin = ["a.json"], ["b.json"]
    with pytest.raises(SnapshotError, match=r"vc1/host-1 is also in a\.json"):
        merge_snapshots([a, b])
    merged = merge_snapshots([small("vc1"), small("vc2")])
    assert [s.id for s in merged.sources] == ["vc1", "vc2"] and len(merged.resources) == 2


def test_merge_refuses_the_same_source_twice(tmp_path):
    """A stale copy of a source beside a fresh one would drop the fresh one's resources under
    the stale one's age; a failed copy would mark the collected one failed."""
    a, b = small(), small()
    b.resources = []  # listed in both, its resources in one
    a.origin, b.origin = ["a.json"], ["b.json"]
    with pytest.raises(SnapshotError, match=r"source vc1 is also in a\.json; pass each source's snapshot once"):
        merge_snapshots([a, b])


def test_incomplete_when_a_source_failed():
    snapshot = small()
    snapshot.sources.append(Source(id="vc2", cloud="vsphere", kind="vcenter", status="failed",
                                   error="connection refused"))
    assert snapshot.incomplete


def test_committed_sample_estate_is_what_the_generator_builds():
    committed = json.loads(SAMPLE_SNAPSHOT.read_text(encoding="utf-8"))
    built = json.loads(json.dumps(build_sample_estate().as_dict()))
    assert committed == built, "run `python -m auditor.sample.generate` and commit the result"


def test_sample_estate_has_both_clouds_three_vcenters_two_subscriptions_and_avs():
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    kinds = {(s.cloud, s.kind) for s in snapshot.sources}
    assert kinds == {("vsphere", "vcenter"), ("azure", "subscription")}
    # two sites, a lab on a release the tables do not know, and an Azure VMware Solution vCenter
    assert len(snapshot.sources) == 6
    assert any(r["type"] == "microsoft.avs/privateclouds" for r in snapshot.resources)
    assert 200 <= len(snapshot.resources) <= 1000


def test_gzip_snapshot_is_reproducible(tmp_path):
    save_snapshot(small(), tmp_path / "a.json.gz")
    save_snapshot(small(), tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert json.loads(gzip.decompress((tmp_path / "a.json.gz").read_bytes()))["schema_version"] == 1
