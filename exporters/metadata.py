"""What an artifact says about itself, written in each format's own metadata so the tools of its platform
show it: who made it, under which licence, what goes in and comes out, and the full I/O contract as JSON.

`about` is built once per artifact by edgeport/export/artifact_about.py and is plain data: name, summary, author,
license, version, inputs {name: line}, outputs {name: line}, contract (a JSON string).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from coremltools.models import MLModel
    from onnx import ModelProto

CONTRACT_KEY = "edgeport.contract"


def flat_properties(about: Mapping[str, Any]) -> dict[str, str]:
    """key -> text, for formats whose metadata is a string map (ONNX metadata_props, Core ML user-defined)."""
    props = {f"edgeport.{k}": str(about[k]) for k in ("name", "summary", "author", "license", "version")
             if about.get(k)}
    for side in ("inputs", "outputs"):
        for name, line in (about.get(side) or {}).items():
            props[f"edgeport.{side[:-1]}.{name}"] = line
    if about.get("contract"):
        props[CONTRACT_KEY] = about["contract"]
    return props


def with_onnx_metadata(proto: ModelProto, about: Mapping[str, Any]) -> ModelProto:
    """metadata_props holding the contract, and doc strings on the graph and its inputs and outputs."""
    del proto.metadata_props[:]
    for key, value in sorted(flat_properties(about).items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = about.get("summary", "")
    lines = {**(about.get("inputs") or {}), **(about.get("outputs") or {})}
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name in lines:
            value.doc_string = lines[value.name]
    return proto


def apply_coreml_metadata(mlmodel: MLModel, about: Mapping[str, Any]) -> None:
    """Xcode's model page: author, licence, version, description, one line per input and output; the contract
    in the user-defined metadata (MLModel.modelDescription.metadata[.creatorDefinedKey])."""
    mlmodel.author = about.get("author", "")
    mlmodel.license = about.get("license", "")
    mlmodel.version = about.get("version", "")
    mlmodel.short_description = about.get("summary", "")
    for name, line in (about.get("inputs") or {}).items():
        mlmodel.input_description[name] = line
    for name, line in (about.get("outputs") or {}).items():
        mlmodel.output_description[name] = line
    for key, value in flat_properties(about).items():
        mlmodel.user_defined_metadata[key] = value
