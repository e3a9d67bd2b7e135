"""TFLite model metadata in the schema Android's Task Library and MediaPipe read (a "TFLITE_METADATA" buffer,
file identifier M001): name, description, version, author, licence, and per tensor its description, and for
pictures ImageProperties (RGB or GRAYSCALE), NormalizationOptions and value stats.

The schema classes come from tflite-support's pure-Python module; the model is repacked with the TFLite
schema that ships with the LiteRT runtime we run it in (tflite-support's own populator repacks with a 2023
schema that drops newer fields). A uint8 image input's NormalizationOptions state what the graph does inside,
pixel -> (pixel - mean) / std, as Google's metadata for uint8 models does; readers feed such inputs raw.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from edgeport.runtimes.atomic import write_bytes

if TYPE_CHECKING:
    from types import ModuleType

    from edgeport.runtimes.pixels import PixelEncoding

METADATA_NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"   # ImageProperties, NormalizationOptions and stats are all 1.0 features


def _schema() -> ModuleType:
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as md

    return md


def _tensor(md: ModuleType, name: str, line: str, enc: PixelEncoding | None, is_input: bool) -> Any:
    t = md.TensorMetadataT()
    t.name, t.description = name, line
    if enc is None:
        return t
    t.content = md.ContentT()
    t.content.contentPropertiesType = md.ContentProperties.ImageProperties
    t.content.contentProperties = md.ImagePropertiesT()
    t.content.contentProperties.colorSpace = md.ColorSpaceType.GRAYSCALE if enc.color == "GRAY" else md.ColorSpaceType.RGB
    mean, std = [255.0 * m for m in enc.mean], [255.0 * s for s in enc.std]
    if is_input:
        unit = md.ProcessUnitT()
        unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
        unit.options = md.NormalizationOptionsT()
        unit.options.mean, unit.options.std = mean, std
        t.processUnits = [unit]
    t.stats = md.StatsT()
    t.stats.min, t.stats.max = [0.0] * enc.channels, [255.0] * enc.channels
    return t


def metadata_buffer(about: Mapping[str, Any], names: tuple[Sequence[str], Sequence[str]],
                    pixels: tuple[Sequence[Any], Sequence[Any]]) -> bytes:
    import flatbuffers

    md = _schema()
    lines = {**(about.get("inputs") or {}), **(about.get("outputs") or {})}
    graph = md.SubGraphMetadataT()
    graph.inputTensorMetadata = [_tensor(md, n, lines.get(n, ""), e, True) for n, e in zip(names[0], pixels[0])]
    graph.outputTensorMetadata = [_tensor(md, n, lines.get(n, ""), e, False) for n, e in zip(names[1], pixels[1])]
    model = md.ModelMetadataT()
    model.name, model.description = about.get("name", ""), about.get("summary", "")
    model.version, model.author, model.license = about.get("version", ""), about.get("author", ""), about.get("license", "")
    model.subgraphMetadata, model.minParserVersion = [graph], MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), IDENTIFIER)
    return bytes(builder.Output())


def unpacked_model(model_bytes: bytes) -> Any:
    """The model as LiteRT's schema objects (ModelT), with weights stored after the flatbuffer (ai-edge-quantizer
    writes them so) moved inside: their offsets would be wrong after a repack; under 2 GB that is the ordinary
    layout."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(model_bytes, 0))
    for buffer in model.buffers or []:
        if buffer.offset and buffer.offset > 1:
            buffer.data = np.frombuffer(model_bytes, np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset, buffer.size = 0, 0
    return model


def packed_model(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def attach_metadata(model_bytes: bytes, metadata: bytes) -> bytes:
    """The model with its TFLITE_METADATA buffer set (replaced when present)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as tfl

    model = unpacked_model(model_bytes)
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    model.metadata = model.metadata or []
    entry = next((m for m in model.metadata if m.name.decode() == METADATA_NAME), None)
    if entry is None:
        entry = tfl.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers)
        model.buffers.append(buffer)
        model.metadata.append(entry)
    else:
        model.buffers[entry.buffer] = buffer
    return packed_model(model)


def write_tflite_metadata(path: Path, about: Mapping[str, Any], names: tuple[Sequence[str], Sequence[str]],
                          pixels: tuple[Sequence[Any], Sequence[Any]]) -> None:
    data = attach_metadata(Path(path).read_bytes(), metadata_buffer(about, names, pixels))
    write_bytes(Path(path), data)


def read_tflite_metadata(path: Path) -> Any:
    """The ModelMetadataT object of a .tflite file, or None when it has none."""
    from ai_edge_litert import schema_py_generated as tfl

    data = Path(path).read_bytes()
    root = tfl.Model.GetRootAs(data, 0)
    md = _schema()
    for i in range(root.MetadataLength()):
        if root.Metadata(i).Name().decode() == METADATA_NAME:
            raw = root.Buffers(root.Metadata(i).Buffer()).DataAsNumpy().tobytes()
            if not md.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
                raise ValueError(f"{path}: the {METADATA_NAME} buffer is not TFLite metadata (no M001 identifier)")
            return md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(raw, 0))
    return None
