"""PoseNet weights: name compatibility, TF.js conversion, lookup order, download, and every error."""

import gzip
import http.server
import json
import re
import shutil
import threading
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanseg.errors import WeightsError
from humanseg.pose import weights as W
from humanseg.pose.mobilenet import PoseNetMobileNetV1, layer_specs


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Empty cache in tmp_path, no weights env var, downloads pointed at a closed local port."""
    monkeypatch.setenv("HUMANSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HUMANSEG_POSENET_WEIGHTS", raising=False)
    monkeypatch.setenv("HUMANSEG_POSENET_URL", "http://127.0.0.1:9/")
    return tmp_path


# --- names and shapes ------------------------------------------------------------------------

def test_converted_050_file_loads_strictly(posenet_weights):
    state = torch.load(posenet_weights, map_location="cpu", weights_only=True)
    model = PoseNetMobileNetV1(50, 16)
    expected = model.state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k].shape for k in state)
    model.load_state_dict(state, strict=True)
    out = model.eval()(torch.zeros(1, 3, 241, 321))
    assert [tuple(o.shape) for o in out] == [(1, 17, 16, 21), (1, 34, 16, 21), (1, 32, 16, 21), (1, 32, 16, 21)]


@pytest.mark.parametrize("model_id, conv0, last", [(50, 16, 256), (75, 24, 384), (100, 32, 1024), (101, 32, 1024)])
def test_layer_widths_per_model_id(model_id, conv0, last):
    sd = PoseNetMobileNetV1(model_id).state_dict()
    assert sd["features.conv0.conv.weight"].shape == (conv0, 3, 3, 3)
    assert sd["heatmap.weight"].shape == (17, last, 1, 1)
    assert sd["features.conv13.depthwise.weight"].shape == (last, 1, 3, 3)


def test_stride_8_dilates_instead_of_downsampling():
    for model_id in (100, 101):  # (1.01 is 1.00's layout, as TF.js names it)
        specs = layer_specs(model_id, 8)
        assert [s.stride for s in specs] == [2, 1, 2, 1, 2] + [1] * 9
        assert [s.dilation for s in specs] == [1] * 7 + [2] * 6 + [4]
    # At stride 16 the large models' last stride-2 layer dilates; the small ones have none there.
    for model_id, last in ((100, 2), (101, 2), (75, 1), (50, 1)):
        assert [s.dilation for s in layer_specs(model_id, 16)] == [1] * 13 + [last], model_id
    out = PoseNetMobileNetV1(50, 8).eval()(torch.zeros(1, 3, 33, 41))
    assert tuple(out[0].shape) == (1, 17, 5, 6)


# --- TF.js conversion -------------------------------------------------------------------------

def test_converted_kernels_compute_what_tensorflow_computes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 6, 4)).astype(np.float32)  # HWC, as TensorFlow holds images
    conv_k = rng.normal(size=(3, 3, 4, 7)).astype(np.float32)  # kh, kw, in, out
    dw_k = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)  # kh, kw, in, multiplier
    state = W.tfjs_to_state_dict({"MobilenetV1/Conv2d_0/weights": conv_k,
                                  "MobilenetV1/Conv2d_1_depthwise/depthwise_weights": dw_k})
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    conv_ref = np.zeros((5, 6, 7), np.float32)
    dw_ref = np.zeros((5, 6, 4), np.float32)
    for y in range(5):
        for xx in range(6):
            patch = padded[y:y + 3, xx:xx + 3]  # 3, 3, in
            conv_ref[y, xx] = np.einsum("ijc,ijco->o", patch, conv_k)
            dw_ref[y, xx] = np.einsum("ijc,ijc->c", patch, dw_k[..., 0])
    t = torch.from_numpy(x.transpose(2, 0, 1))[None]
    conv = F.conv2d(t, state["features.conv0.conv.weight"], padding=1)[0].numpy().transpose(1, 2, 0)
    dw = F.conv2d(t, state["features.conv1.depthwise.weight"], padding=1, groups=4)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(conv, conv_ref, atol=1e-4)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-4)


def _tfjs_variables(state):
    """TF.js variable names and layouts for a state dict (written here by hand, independently)."""
    out = {}
    for key, t in state.items():
        a = t.numpy()
        parts = key.split(".")
        var = "biases" if parts[-1] == "bias" else "weights"
        if parts[0] == "features" and parts[1] == "conv0":
            layer = "Conv2d_0"
        elif parts[0] == "features":
            layer = f"Conv2d_{parts[1][4:]}_{parts[2]}"
            if parts[2] == "depthwise" and var == "weights":
                var = "depthwise_weights"
        else:
            layer = f"{parts[0]}_2"
        if a.ndim == 4:
            # torch (C, 1, kh, kw) -> TF (kh, kw, C, 1); torch (out, in, kh, kw) -> TF (kh, kw, in, out)
            a = a.transpose(2, 3, 0, 1) if var == "depthwise_weights" else a.transpose(2, 3, 1, 0)
        out[f"MobilenetV1/{layer}/{var}"] = np.ascontiguousarray(a, dtype="<f4")
    return out


def _write_checkpoint(folder, state, gzip_files=(), truncate=None, lengthen=None,
                      unused=("MobilenetV1/unused_layer/weights",)):
    folder.mkdir(parents=True)
    manifest = {}
    for i, (name, a) in enumerate(_tfjs_variables(state).items()):
        fname = name.replace("/", "_")
        manifest[name] = {"filename": fname, "shape": list(a.shape)}
        data = a.tobytes()
        if name == truncate:
            data = data[:-8]
        if name == lengthen:
            data = data + b"\0" * 8
        if name in gzip_files:
            data = gzip.compress(data)
        (folder / fname).write_bytes(data)
    for k, name in enumerate(unused):  # skipped: not fetched (the server has no file for them)
        manifest[name] = {"filename": f"unused{k}", "shape": [2]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _random_state(model_id=50):
    torch.manual_seed(0)
    return {k: torch.randn_like(v) for k, v in PoseNetMobileNetV1(model_id).state_dict().items()}


def test_download_converts_caches_and_loads(isolated_env, local_server, monkeypatch):
    root, url = local_server
    state = _random_state()
    gz = ["MobilenetV1/Conv2d_3_depthwise/depthwise_weights", "MobilenetV1/heatmap_2/biases"]
    _write_checkpoint(root / "mobilenet_v1_050", state, gzip_files=gz)
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    path = W.resolve_weights(None, 50, show_progress=False)
    assert path == isolated_env / "cache" / "posenet" / "mobilenet_v1_050.pth"
    assert not list(path.parent.glob("*.tmp"))
    loaded = W.load_state_dict(path, 50)
    assert set(loaded) == set(state)
    for k in state:
        torch.testing.assert_close(loaded[k], state[k], rtol=0, atol=0)
    # The second lookup uses the cache: the server's files can go.
    for f in (root / "mobilenet_v1_050").iterdir():
        f.unlink()
    assert W.resolve_weights(None, 50) == path
    net = W.load_network(None, 50, 16)
    torch.testing.assert_close(net.heatmap.bias, state["heatmap.bias"])
    assert not net.training  # load_network promises a network in eval mode


def test_variables_of_other_names_in_a_checkpoint_are_neither_fetched_nor_converted(isolated_env, local_server,
                                                                                    monkeypatch):
    # A mirror's manifest may list more than MobileNetV1's convolutions (a step counter, batch-norm
    # statistics, a layer of another kind): none of them is fetched, and the model converts as without them.
    root, url = local_server
    state = _random_state()
    others = ("global_step", "MobilenetV1/Conv2d_1_depthwise/BatchNorm/gamma", "MobilenetV1/Conv2d_0/moving_mean",
              "MobilenetV1/Conv2d_1_expand/weights", "MobilenetV1/Conv2d_x_pointwise/weights", "Other/Conv2d_0/weights")
    _write_checkpoint(root / "mobilenet_v1_050", state, unused=others)
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    loaded = W.load_state_dict(W.resolve_weights(None, 50, show_progress=False), 50)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    # Handed to the converter itself, they are passed over too.
    variables = _tfjs_variables(state)
    direct = W.tfjs_to_state_dict({**variables, **{name: np.zeros(2, np.float32) for name in others}})
    assert set(direct) == set(state) and all(torch.equal(direct[k], state[k]) for k in state)


def test_a_raw_variable_file_starting_like_gzip_is_taken_as_it_came(isolated_env, local_server, monkeypatch):
    # A first weight of 0.0314 (bytes 1f 8b 00 3d) made the file look gzipped: "Not a gzipped file".
    root, url = local_server
    state = _random_state()
    state["heatmap.bias"][0] = float(np.frombuffer(b"\x1f\x8b\x00\x3d", "<f4")[0])
    _write_checkpoint(root / "mobilenet_v1_050", state)
    assert (root / "mobilenet_v1_050" / "MobilenetV1_heatmap_2_biases").read_bytes()[:4] == b"\x1f\x8b\x00\x3d"
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    loaded = W.load_state_dict(W.resolve_weights(None, 50, show_progress=False), 50)
    torch.testing.assert_close(loaded["heatmap.bias"], state["heatmap.bias"], rtol=0, atol=0)


@pytest.mark.parametrize("damage", ["truncate", "lengthen"])
def test_download_of_a_short_or_long_variable_file_is_an_error(isolated_env, local_server, monkeypatch, damage):
    # A longer file (one served with bytes after the tensor's) was a numpy reshape traceback.
    root, url = local_server
    _write_checkpoint(root / "mobilenet_v1_050", _random_state(), **{damage: "MobilenetV1/offset_2/weights"})
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    with pytest.raises(WeightsError, match=r"offset_2_weights: \d+ bytes, expected") as err:
        W.resolve_weights(None, 50, show_progress=False)
    assert "\n" not in str(err.value)
    assert not W.cached_path(50).exists()


# A shape of strings was a numpy traceback; a negative one "68 bytes, expected -68"; a kernel of rank 1
# a numpy "axes don't match" traceback; sides of 2**20 overflowed np.prod to 0, so an empty file passed
# the size check and reshape raised.
@pytest.mark.parametrize("variable, shape, said", [
    *[("heatmap_2/biases", shape, "not a TF.js checkpoint manifest$") for shape in (["a"], [-17], 5, [2.5])],
    *[("Conv2d_1_pointwise/weights", shape, "not a PoseNet MobileNetV1 checkpoint") for shape in ([4], [1 << 20] * 4)]])
def test_a_manifest_with_impossible_shapes_is_one_line(isolated_env, local_server, monkeypatch, variable, shape, said):
    root, url = local_server
    _write_checkpoint(root / "mobilenet_v1_050", _random_state())
    manifest = json.loads((root / "mobilenet_v1_050" / "manifest.json").read_text())
    manifest[f"MobilenetV1/{variable}"]["shape"] = shape
    (root / "mobilenet_v1_050" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    with pytest.raises(WeightsError, match=rf"^http://.*/mobilenet_v1_050/manifest.json: {said}"):
        W.resolve_weights(None, 50, show_progress=False)
    assert not W.cached_path(50).exists()


def test_a_variable_file_missing_on_the_server_is_one_line_naming_it(isolated_env, local_server, monkeypatch):
    root, url = local_server
    _write_checkpoint(root / "mobilenet_v1_050", _random_state())
    (root / "mobilenet_v1_050" / "MobilenetV1_heatmap_2_biases").unlink()
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    with pytest.raises(WeightsError, match=rf"^no PoseNet weights for model 50: .*\(download of "
                                           rf"{re.escape(url)}mobilenet_v1_050/MobilenetV1_heatmap_2_biases "
                                           rf"failed: HTTP 404 ") as err:
        W.resolve_weights(None, 50, show_progress=False)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert not W.cached_path(50).exists()


def test_a_downloaded_checkpoint_of_another_model_is_refused_before_it_is_cached(isolated_env, local_server,
                                                                               monkeypatch):
    # A mirror serving model 75's files as mobilenet_v1_050 must not leave them cached as model 50's.
    root, url = local_server
    _write_checkpoint(root / "mobilenet_v1_050", _random_state(75))
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    with pytest.raises(WeightsError, match=rf"^{re.escape(url)}mobilenet_v1_050/: holds model 75 weights, not model 50"):
        W.resolve_weights(None, 50, show_progress=False)
    assert not W.cached_path(50).parent.exists() or not list(W.cached_path(50).parent.iterdir())


def test_a_cache_write_that_fails_half_way_leaves_no_partial_file(isolated_env, local_server, monkeypatch):
    # The file size limit (as a disk filling up) stops the write of the converted weights after 1 MB:
    # a partial cache file would be found and refused as truncated on every later run.
    import resource
    import signal

    root, url = local_server
    _write_checkpoint(root / "mobilenet_v1_050", _random_state())
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    state = W.download_tfjs_checkpoint(50, show_progress=False)
    monkeypatch.setattr(W, "download_tfjs_checkpoint", lambda *args, **kwargs: state)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:
        with pytest.raises(WeightsError) as err:
            W.resolve_weights(None, 50, show_progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, before)
    path = W.cached_path(50)
    assert str(err.value) == f"cannot write PoseNet weights to {path}: File too large"
    assert err.value.exit_code == 1  # a runtime failure, not bad input
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("zip_format", [True, False])
def test_posenet_weights_holding_python_objects_are_refused(tmp_path, posenet_weights, zip_format):
    # Loading them would run the pickle's code: only tensors are read, in PyTorch's zip format or the
    # older pickle one (torch.save before 1.6).
    import argparse

    state = torch.load(posenet_weights, weights_only=True)
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, tmp_path / "objects.pth",
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(WeightsError, match=r"objects\.pth: cannot load PoseNet weights \(holds Python objects, "
                                           r"not only tensors\)$"):
        W.load_state_dict(tmp_path / "objects.pth", 50)


def test_download_of_a_missing_model_says_where_to_put_the_file(isolated_env, local_server, monkeypatch):
    _, url = local_server  # serves nothing for mobilenet_v1_075
    monkeypatch.setenv("HUMANSEG_POSENET_URL", url)
    with pytest.raises(WeightsError) as err:
        W.resolve_weights(None, 75, show_progress=False)
    msg = str(err.value)
    assert "mobilenet_v1_075.pth" in msg and str(isolated_env / "cache" / "posenet") in msg
    assert "--posenet-weights" in msg and "404" in msg and "\n" not in msg
    assert err.value.exit_code == 2  # a missing input, as main.py and training.py said (pose said 1)


def test_offline_says_where_to_put_the_file(isolated_env):
    with pytest.raises(WeightsError, match="put mobilenet_v1_050.pth in .*cache/posenet or pass --posenet-weights"):
        W.resolve_weights(None, 50, show_progress=False)


# --- lookup order ------------------------------------------------------------------------------

def test_lookup_order_explicit_then_env_then_cache(isolated_env, monkeypatch, posenet_weights):
    cached = W.cached_path(50)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(posenet_weights.read_bytes())
    assert W.resolve_weights(None, 50) == cached
    env_file = isolated_env / "env.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", str(env_file))
    assert W.resolve_weights(None, 50) == env_file
    assert W.resolve_weights(posenet_weights, 50) == posenet_weights


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("HUMANSEG_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert W.cache_dir() == tmp_path / "humanseg" / "posenet"


# --- errors -----------------------------------------------------------------------------------

def test_missing_explicit_file(isolated_env):
    with pytest.raises(WeightsError, match=r"--posenet-weights .*nope.pth: no such file") as err:
        W.resolve_weights(isolated_env / "nope.pth", 50)
    assert err.value.exit_code == 2
    # Empty (an unset shell variable) was the current folder: "--posenet-weights .: no such file".
    with pytest.raises(WeightsError, match=r"^--posenet-weights is empty: name a weights file \(.pth\)"):
        W.resolve_weights("", 50)


def test_missing_env_file(isolated_env, monkeypatch):
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", str(isolated_env / "gone.pth"))
    with pytest.raises(WeightsError, match=r"HUMANSEG_POSENET_WEIGHTS=.*gone.pth: no such file"):
        W.resolve_weights(None, 50)
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", str(isolated_env))  # was "no such file" too
    with pytest.raises(WeightsError, match=r"^HUMANSEG_POSENET_WEIGHTS=.*: a folder, not a weights file \(.pth\)$"):
        W.resolve_weights(None, 50)
    with pytest.raises(WeightsError, match=r"^--posenet-weights .*: a folder, not a weights file \(.pth\)$"):
        W.resolve_weights(isolated_env, 50)


def test_wrong_model_id(posenet_weights):
    with pytest.raises(WeightsError, match=r"holds model 50 weights, not model 75") as err:
        W.load_state_dict(posenet_weights, 75)
    assert str(posenet_weights) in str(err.value) and err.value.exit_code == 2


def test_truncated_file(tmp_path, posenet_weights):
    short = tmp_path / "short.pth"
    short.write_bytes(posenet_weights.read_bytes()[:1_000_000])
    with pytest.raises(WeightsError, match=r"short.pth: cannot load PoseNet weights \(a truncated PyTorch archive\)"):
        W.load_state_dict(short, 50)


def test_not_a_torch_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(WeightsError, match=r"junk.pth: cannot load PoseNet weights \(not a PyTorch weights file\)"):
        W.load_state_dict(junk, 50)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(WeightsError, match=r"list.pth: not a PoseNet state dict"):
        W.load_state_dict(path, 50)


def test_state_dict_of_another_network(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(WeightsError, match=r"other.pth: not a PoseNet MobileNetV1 model 50 state dict \(missing"):
        W.load_state_dict(path, 50)


def test_unknown_model_id(isolated_env):
    with pytest.raises(WeightsError, match="model id must be one of 50, 75, 100, 101"):
        W.resolve_weights(None, 60)


def test_weights_of_another_kind_of_tensor_are_refused(tmp_path, posenet_weights):
    # An integer copy loaded silently (found nobody, exit 0); a float8, sparse or quantized tensor
    # was a traceback.
    state = torch.load(posenet_weights, weights_only=True)
    key = "heatmap.bias"
    kinds = {"int64": lambda t: t.to(torch.int64), "bool": lambda t: t.to(torch.bool),
             "sparse": lambda t: t.to_sparse()}
    if hasattr(torch, "float8_e4m3fn"):
        kinds["float8"] = lambda t: t.to(torch.float8_e4m3fn)
    for name, make in kinds.items():
        bad = dict(state, **{key: make(state[key])})
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(WeightsError, match=rf"{name}\.pth: heatmap\.bias is a \w+ tensor .*not dense float "
                                               rf"weights"):
            W.load_state_dict(tmp_path / f"{name}.pth", 50)


def test_weights_in_other_float_types_or_wrapped_load_and_infinite_ones_are_refused(tmp_path, posenet_weights):
    state = torch.load(posenet_weights, weights_only=True)
    plain = W.load_state_dict(posenet_weights, 50)
    # Half, bfloat16 or double precision, and a {"state_dict": ...} wrapper, as training scripts save.
    for name, saved in (("half", {k: v.half() for k, v in state.items()}),
                        ("bf16", {k: v.to(torch.bfloat16) for k, v in state.items()}),
                        ("double", {k: v.double() for k, v in state.items()}),
                        ("wrapped", {"state_dict": state, "epoch": 3})):
        torch.save(saved, tmp_path / f"{name}.pth")
        loaded = W.load_state_dict(tmp_path / f"{name}.pth", 50)
        key = "heatmap.weight"
        assert torch.allclose(loaded[key].float(), plain[key].float(), atol=0.02 * plain[key].abs().max()), name
    # An infinite weight, as a NaN, finds nobody in every image: refused by name.
    key = "heatmap.bias"
    torch.save(dict(state, **{key: state[key] * float("inf")}), tmp_path / "inf.pth")
    with pytest.raises(WeightsError, match=rf"inf\.pth: PoseNet weights hold NaN or infinite values \(1 tensor\(s\), "
                                           rf"e\.g\. {re.escape(key)}\)"):
        W.load_state_dict(tmp_path / "inf.pth", 50)


def test_a_file_of_another_model_size_is_named_by_its_size(tmp_path):
    from humanseg.pose.mobilenet import PoseNetMobileNetV1

    for model_id in (75, 100):
        torch.save(PoseNetMobileNetV1(model_id).state_dict(), tmp_path / f"{model_id}.pth")
        with pytest.raises(WeightsError, match=rf"holds model {model_id} weights, not model 50"):
            W.load_state_dict(tmp_path / f"{model_id}.pth", 50)


def test_a_mirror_address_without_its_last_slash_is_taken_as_a_folder(monkeypatch):
    for given in ("https://mirror.example/posenet", "https://mirror.example/posenet/"):
        monkeypatch.setenv(W.URL_ENV, given)
        assert W.base_url() == "https://mirror.example/posenet/"
    monkeypatch.delenv(W.URL_ENV)
    assert W.base_url() == W.DEFAULT_BASE_URL and W.DEFAULT_BASE_URL.endswith("/")


def test_a_weights_file_with_flipped_bytes_is_refused(tmp_path, posenet_weights):
    # torch.load does not check the archive's checksums: 400 flipped bytes inside a tensor loaded,
    # and moved the palms in silence.
    data = bytearray(posenet_weights.read_bytes())
    for i in range(1_000_000, 1_000_400):
        data[i] ^= 0xFF
    (tmp_path / "flipped.pth").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"flipped\.pth: cannot load PoseNet weights \(a damaged PyTorch "
                                           r"archive: .* fails its checksum\)"):
        W.load_state_dict(tmp_path / "flipped.pth", 50)


def test_cache_variables_that_are_relative_or_start_with_a_tilde(monkeypatch, tmp_path):
    # XDG_CACHE_HOME=relx made ./relx/humanseg/... in the current folder (the spec says ignore it);
    # HUMANSEG_CACHE='~/hc' made a folder named "~".
    monkeypatch.delenv("HUMANSEG_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relx")
    assert W.cache_dir() == tmp_path / ".cache" / "humanseg" / "posenet"
    monkeypatch.setenv("HUMANSEG_CACHE", "~/hc")
    assert W.cache_dir() == tmp_path / "hc" / "posenet"


def test_a_url_that_is_not_one_is_one_line(isolated_env):
    # http.client.InvalidURL is no URLError: a traceback in pose, main.py and training.py.
    with pytest.raises(WeightsError, match=r"download of http://a b/mobilenet_v1_050/manifest\.json failed"):
        W.download_tfjs_checkpoint(50, url="http://a b/", show_progress=False)


def test_the_weights_variable_expands_a_home_folder(isolated_env, monkeypatch, posenet_weights):
    # Quoted in a shell profile, "~/pose.pth" was "no such file" (HUMANSEG_CACHE expanded its ~).
    from humanseg.pose.weights import resolve_weights

    home = isolated_env / "home"
    home.mkdir()
    shutil.copy(posenet_weights, home / "pose.pth")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", "~/pose.pth")
    assert resolve_weights(None, 50) == home / "pose.pth"


def test_a_state_dict_with_extra_keys_is_refused_in_one_line():
    # A file with a key the network does not have is refused as one missing a key is (a traceback
    # from load_state_dict otherwise).
    state = PoseNetMobileNetV1(50).state_dict()
    state["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(WeightsError, match="unexpected extra_head.weight"):
        W.check_state_dict(state, 50, source="w.pth")
