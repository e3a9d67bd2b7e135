"""`--weights official` and the downloader, against a server this test starts on 127.0.0.1."""
import hashlib
import http.server
import json
import socket
import struct
import threading
from dataclasses import replace

import pytest
import torch

import edgeport.models.dncnn as dncnn
from edgeport.cli import main
from edgeport.models.download import DownloadError, NoNetwork, fetch_verified

BODY = bytes(range(256)) * 4096          # 1 MiB
BODY_SHA = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        behaviour = self.routes.get(name)
        if behaviour is None:
            self.send_error(404, "Not Found")
            return
        kind, body = behaviour
        self.send_response(200)
        declared = len(body) if kind != "gone" else len(body) * 2
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        if kind == "gone":      # half the body, then the connection is reset: the server went away
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.routes
    httpd.shutdown()
    httpd.server_close()


def test_good_file_lands_whole_and_verified(server, tmp_path):
    _, base, routes = server
    routes["w.pth"] = ("ok", BODY)
    seen = []
    path = fetch_verified(f"{base}/w.pth", tmp_path / "w.pth", BODY_SHA, len(BODY), progress=lambda g, t: seen.append(t))
    assert path.read_bytes() == BODY and list(tmp_path.iterdir()) == [path] and seen[-1] == len(BODY)


@pytest.mark.parametrize("name,route,needle", [
    ("wrong-hash", ("ok", BODY[:-1] + b"x"), "has sha256 .* expected .*nothing was kept"),
    ("truncated", ("ok", BODY[: len(BODY) // 3]), "gave 349525 bytes, the release file has 1048576"),
    ("gone", ("gone", BODY), "broke off after|ended after"),
    ("missing", None, "HTTP 404 Not Found"),
])
def test_each_failure_is_one_clear_error_and_leaves_nothing(server, tmp_path, name, route, needle):
    _, base, routes = server
    if route:
        routes[f"{name}.pth"] = route
    with pytest.raises(DownloadError, match=needle):
        fetch_verified(f"{base}/{name}.pth", tmp_path / f"{name}.pth", BODY_SHA, len(BODY))
    assert list(tmp_path.iterdir()) == []


def test_no_server_at_all_is_no_network(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # closed again: nothing listens there
    with pytest.raises(NoNetwork, match=f"cannot reach 127.0.0.1:{port}"):
        fetch_verified(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", BODY_SHA)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def official_dncnn(monkeypatch, tmp_path):
    """denoise-dncnn-gray's official record pointed at a checkpoint this test writes (the real file is not
    reachable here); the mirror variable sends the download to the loopback server."""
    torch.manual_seed(5)
    state = dncnn.DnCNN(1, 1, 64, 17).state_dict()
    torch.save(state, tmp_path / "dncnn_25.pth")
    data = (tmp_path / "dncnn_25.pth").read_bytes()
    file = replace(dncnn.DNCNN_25.download, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    spec = replace(dncnn.SPECS[0], official=replace(dncnn.DNCNN_25, download=file))
    monkeypatch.setattr(dncnn, "SPECS", (spec, *dncnn.SPECS[1:]))
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPORT_WEIGHTS_DIR", str(cache))
    monkeypatch.delenv("EDGEPORT_OFFLINE", raising=False)     # downloads go to the loopback server only
    return data, cache


@pytest.mark.parametrize("route,needle", [
    (None, "HTTP 404"),
    (lambda data: ("ok", bytes(len(data))), "has sha256 .*, expected"),          # right size, wrong bytes
    (lambda data: ("ok", data[:1000]), "gave 1000 bytes, the release file has"),  # short file
    (lambda data: ("gone", data), "broke off|ended after"),                       # connection reset mid-body
])
def test_cli_download_failures_exit_2_with_one_line(server, official_dncnn, monkeypatch, capsys, route, needle):
    _, base, routes = server
    if route:
        routes["dncnn_25.pth"] = route(official_dncnn[0])
    monkeypatch.setenv("EDGEPORT_WEIGHTS_MIRROR", base)
    assert main(["weights", "fetch", "denoise-dncnn-gray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgeport: error:") and __import__("re").search(needle, err[0]), err
    cache = official_dncnn[1]
    assert not cache.exists() or list(cache.iterdir()) == []


def test_official_weights_download_once_then_work_offline(server, official_dncnn, monkeypatch, tmp_path, capsys):
    httpd, base, routes = server
    data, cache = official_dncnn
    routes["dncnn_25.pth"] = ("ok", data)
    monkeypatch.setenv("EDGEPORT_WEIGHTS_MIRROR", base)
    monkeypatch.setenv("EDGEPORT_IN_PROCESS", "1")     # the release record is patched in this process
    args = ["export", "denoise-dncnn-gray", "--weights", "official", "--to", "onnx", "--input-size", "32x32",
            "--out", str(tmp_path / "a"), "--json", "--quiet"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert "downloaded from http://127.0.0.1" in first["source"] and first["rows"][0]["status"] == "pass"
    httpd.shutdown()                       # the network is gone: the verified cached copy serves
    monkeypatch.setenv("EDGEPORT_OFFLINE", "1")
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert "cached" in second["source"] and (cache / "dncnn_25.pth").read_bytes() == data
    manifest = json.loads((tmp_path / "a" / "denoise-dncnn-gray" / "onnx-fp32" / "manifest.json").read_text())
    assert manifest["source"]["weights_sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["source"]["weights"] == str(cache / "dncnn_25.pth")


def test_damaged_cache_copy_is_never_used(official_dncnn, monkeypatch, capsys):
    _, cache = official_dncnn
    cache.mkdir()
    (cache / "dncnn_25.pth").write_bytes(b"bit rot")
    monkeypatch.setenv("EDGEPORT_OFFLINE", "1")
    assert main(["weights", "fetch", "denoise-dncnn-gray"]) == 2
    assert "not in the cache" in capsys.readouterr().err and not (cache / "dncnn_25.pth").exists()


def test_model_without_a_published_hash_refuses_to_download(capsys):
    assert main(["weights", "fetch", "denoise-dncnn-color"]) == 2
    assert "no published sha256" in capsys.readouterr().err


def test_weights_lists_known_and_cached_files(official_dncnn, capsys):
    assert main(["weights", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {(r["model"], r["file"]): r for r in listing["files"]}
    assert rows["realesr-animevideov3", "realesr-animevideov3.pth"]["sha256"].startswith("b8a83768")
    assert rows["inpaint-gmcnn", None]["where"].startswith("none known")
    assert listing["cache"] == str(official_dncnn[1])


def test_official_for_a_model_without_a_release_is_one_line(capsys, tmp_path):
    assert main(["export", "inpaint-gmcnn", "--weights", "official", "--to", "onnx", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["edgeport: error: inpaint-gmcnn has no official release edgeport knows of (`edgeport weights` lists "
                   "the models that have one); give --weights FILE, or leave it out for random init"]
    assert list(tmp_path.iterdir()) == []
