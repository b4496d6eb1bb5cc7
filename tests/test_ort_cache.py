"""The cache of exported ONNX graphs (humanseg.ort_session): a graph is reused only for the module,
settings and code it was exported from, a damaged one is exported again, and a cache that cannot be
written costs nothing but the export."""

import copy
import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from humanseg import ort_session
from humanseg.model import SiameseSegNet, load_segmenter
from humanseg.model.network import NetConfig
from humanseg.model.segmenter import Segmenter

AXES = {"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}


@pytest.fixture
def graphs(tmp_path, monkeypatch):
    folder = tmp_path / "graphs"
    monkeypatch.setenv(ort_session.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def exports(monkeypatch):
    """The exports made, in order (each a module); the export itself runs as it would."""
    made = []
    real = ort_session._export

    def export(module, *args):
        made.append(module)
        return real(module, *args)

    monkeypatch.setattr(ort_session, "_export", export)
    return made


def small(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1)).eval()


def session(module):
    return ort_session.session_from_module(module, (torch.zeros(1, 3, 8, 8),), ["x"], ["y"], AXES, 1)


def run(sess, x):
    return sess.run(None, {"x": x})[0]


def test_the_shipped_model_from_the_cache_segments_as_the_export_does(graphs, exports, dev_root):
    frame, bkg = (cv2.imread(str(dev_root / "set3" / name)) for name in ("0.png", "bkg.png"))
    first = load_segmenter(num_threads=1)
    assert len(exports) == 1 and len(list(graphs.glob("*.onnx"))) == 1
    again = load_segmenter(num_threads=1)
    assert len(exports) == 1 and again.active_backend == "onnxruntime"  # no second export
    masks = []
    for seg in (first, again):
        seg.set_background(bkg)
        masks.append(seg.predict_mask(frame))
    assert masks[0].mean() > 0.1 and np.array_equal(masks[0], masks[1])
    # Another process finds it too: the key follows from what is exported, nothing of this process.
    code = ("from humanseg import ort_session as o; from humanseg.model import load_segmenter as l; "
            "o._export = None; s = l(num_threads=1); print(s.active_backend)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout) == (0, "onnxruntime\n"), r.stderr


def test_the_key_follows_weights_settings_code_and_export(monkeypatch):
    torch.manual_seed(0)
    model = SiameseSegNet().eval()
    example = (torch.zeros(1, 3, 64, 64),)

    def key(m, names=("x",)):
        return ort_session.graph_key(m, example, list(names), ["y"], AXES)

    base = key(model)
    assert key(copy.deepcopy(model)) == base and len(base) == 32
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        next(nudged.parameters()).view(-1)[0] += 1e-6
    other_config = SiameseSegNet(NetConfig(exposure_iters=2)).eval()
    other_config.load_state_dict(model.state_dict())  # the same weights, another setting
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    keys = {key(nudged), key(other_config), key(channels_last), key(model, ("z",)), base}
    monkeypatch.setattr(ort_session, "source_digest", lambda: "other code")
    keys.add(key(model))
    assert len(keys) == 6


def test_a_damaged_graph_is_exported_again_and_replaced(graphs, exports):
    x = np.random.default_rng(0).random((1, 3, 16, 12), np.float32)
    expected = run(session(small(1)), x)
    [path] = graphs.glob("*.onnx")
    good = path.read_bytes()
    for damage in (b"", good[: len(good) // 2], b"\x00" * 64):
        path.write_bytes(damage)
        np.testing.assert_array_equal(run(session(small(1)), x), expected)
        assert path.read_bytes() == good
    assert len(exports) == 4
    np.testing.assert_array_equal(run(session(small(1)), x), expected)
    assert len(exports) == 4  # taken from the cache


def test_a_cache_that_cannot_be_used_costs_only_the_export(tmp_path, monkeypatch, exports):
    x = np.random.default_rng(0).random((1, 3, 8, 8), np.float32)
    expected = run(session(small(2)), x)  # (the suite's own cache)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder goes")
    for value in (str(blocked), str(blocked / "deeper"), "off", "OFF"):
        monkeypatch.setenv(ort_session.CACHE_ENV, value)
        np.testing.assert_array_equal(run(session(small(2)), x), expected)
    assert blocked.read_text() == "a file where the folder goes" and os.listdir(tmp_path) == ["file"]
    assert len(exports) == 5
    monkeypatch.setenv(ort_session.CACHE_ENV, "off")
    assert ort_session.graph_cache_dir() is None
    # Unset: the project's cache folder, as PoseNet's weights' ($HUMANSEG_CACHE here).
    monkeypatch.delenv(ort_session.CACHE_ENV)
    monkeypatch.setenv("HUMANSEG_CACHE", str(tmp_path / "c"))
    assert ort_session.graph_cache_dir() == tmp_path / "c" / "onnx"


def key_of(module) -> str:
    return ort_session.graph_key(module, (torch.zeros(1, 3, 8, 8),), ["x"], ["y"], AXES)


def test_the_least_recently_used_graphs_go_beyond_the_limit(graphs, exports, monkeypatch):
    monkeypatch.setattr(ort_session, "CACHE_KEEP", 2)
    session(small(1))
    session(small(2))
    os.utime(graphs / f"{key_of(small(1))}.onnx", (2, 2))
    os.utime(graphs / f"{key_of(small(2))}.onnx", (1, 1))  # the older of the two
    session(small(2))  # a hit: now the more recently used
    session(small(3))  # a third: the one not used since goes
    assert len(exports) == 3
    assert sorted(p.stem for p in graphs.glob("*.onnx")) == sorted([key_of(small(2)), key_of(small(3))])


def test_training_validation_keeps_no_graphs(graphs, exports, copy_set, default_weights):
    # Its weights change between validations: each graph would be used once.
    from humanseg.data.dataset import load_pairs
    from humanseg.model import load_model
    from humanseg.train import validate

    scores = validate(load_model(default_weights)[0].eval(), load_pairs([copy_set(2)]), 320)
    assert scores["iou"] > 0.9 and len(exports) == 1 and not graphs.exists()
    Segmenter(SiameseSegNet().eval(), graph_cache=False)
    assert len(exports) == 2 and not graphs.exists()


def test_posenet_from_the_cache_answers_as_the_export_does(graphs, exports, posenet_weights, dev_root):
    from humanseg.pose.estimator import OrtRunner, PoseEstimator

    first = PoseEstimator.load(posenet_weights)
    assert isinstance(first._runner, OrtRunner) and len(exports) == 1
    code = ("import sys, hashlib, cv2; from humanseg import ort_session as o; o._export = None; "
            "from humanseg.pose.estimator import OrtRunner, PoseEstimator as P; e = P.load(sys.argv[1]); "
            "outs = e.forward(e.preprocess(cv2.imread(sys.argv[2]))); "
            "print(isinstance(e._runner, OrtRunner), hashlib.sha256(b''.join(x.tobytes() for x in outs)).hexdigest())")
    frame = dev_root / "set3" / "0.png"
    r = subprocess.run([sys.executable, "-c", code, str(posenet_weights), str(frame)], capture_output=True,
                       text=True, timeout=300)
    outs = first.forward(first.preprocess(cv2.imread(str(frame))))
    assert len(outs) == 4 and outs[0].max() > 0.5  # (a person: a confident keypoint)
    assert (r.returncode, r.stdout) == (0, f"True {hashlib.sha256(b''.join(x.tobytes() for x in outs)).hexdigest()}\n")


def test_a_key_that_cannot_be_computed_means_no_cache_not_no_session(graphs, exports, monkeypatch):
    x = np.random.default_rng(0).random((1, 3, 8, 8), np.float32)
    expected = run(session(small(4)), x)

    def unreadable():
        raise PermissionError("humanseg/store.py")

    monkeypatch.setattr(ort_session, "source_digest", unreadable)
    monkeypatch.setenv(ort_session.CACHE_ENV, "~nosuchuser/graphs")  # (expanduser cannot)
    np.testing.assert_array_equal(run(session(small(4)), x), expected)
    monkeypatch.setenv(ort_session.CACHE_ENV, str(graphs))
    np.testing.assert_array_equal(run(session(small(4)), x), expected)
    assert len(exports) == 3 and len(list(graphs.glob("*.onnx"))) == 1  # the first one's
