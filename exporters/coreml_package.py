"""Byte-reproducible .mlpackage folders.

coremltools writes random UUIDs into the package's Manifest.json and serialises the model spec's protobuf
maps in hash order (two identical conversions differed by thousands of bytes of model.mlmodel, with equal
parsed specs); it also stamps the conversion date into the metadata. Here the UUIDs are derived from each
item's path, the spec is re-serialised deterministically and the date is dropped (the manifest records when
the export ran), so identical exports give identical bytes and one content digest.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

# a fixed namespace: item identifiers are uuid5(namespace, item path inside the package)
_NAMESPACE = uuid.UUID("5f0c6a52-2f5e-4c3e-9a55-6564676570f2")
_DATE_KEY = "com.github.apple.coremltools.conversion_date"


def _stable_manifest(package: Path) -> None:
    path = package / "Manifest.json"
    data = json.loads(path.read_text())
    renamed = {old: str(uuid.uuid5(_NAMESPACE, entry["path"])).upper()
               for old, entry in data["itemInfoEntries"].items()}
    data["itemInfoEntries"] = {renamed[old]: entry for old, entry in data["itemInfoEntries"].items()}
    data["rootModelIdentifier"] = renamed[data["rootModelIdentifier"]]
    path.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")


def _stable_spec(package: Path) -> None:
    from coremltools.proto import Model_pb2

    data = json.loads((package / "Manifest.json").read_text())
    root = data["itemInfoEntries"][data["rootModelIdentifier"]]["path"]
    path = package / "Data" / root
    spec = Model_pb2.Model()
    spec.ParseFromString(path.read_bytes())
    spec.description.metadata.userDefined.pop(_DATE_KEY, None)
    path.write_bytes(spec.SerializeToString(deterministic=True))


def make_reproducible(package: Path) -> None:
    _stable_manifest(package)
    _stable_spec(package)
