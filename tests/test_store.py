import errno
import multiprocessing as mp
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
import zlib

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from humanseg import store
from humanseg.cli import reports_errors
from humanseg.errors import AlreadyExists, HumansegError, StoreError
from tests.conftest import ROOT, as_from_a_terminal


def _img(h=48, w=64, value=100):
    img = np.full((h, w, 3), value, np.uint8)
    img[5:20, 10:30] = (0, 50, 250)
    return img


def test_set_and_frame_numbering_with_gaps(tmp_path):
    root = tmp_path / "images"
    for n in (1, 2, 10):
        (root / f"set{n}").mkdir(parents=True)
        (root / f"set{n}" / "notes.txt").write_text("x")  # (an empty set folder is none: a save cut off)
    (root / "setx").mkdir()
    (root / "set01").mkdir()  # not a name the tool writes: read as set 1 it would be looked up as set1/
    (root / "notes.txt").write_text("x")
    assert store.list_sets(root) == [1, 2, 10]  # numeric, not "1, 10, 2"
    assert store.next_set_number(root) == 11
    n, path = store.create_set(root)
    assert (n, path.name) == (11, "set11")
    s = root / "set2"
    for name in ("0.png", "2.png", "10.png", "bkg.png", "2_mask.png", "3_pred.png", "4.json", "07.png"):
        (s / name).write_bytes(b"")
    assert store.list_frames(s) == [0, 2, 10]
    assert store.next_frame_number(s) == 11
    assert store.next_frame_number(root / "set1") == 0
    info = store.scan_set(root, 2)
    assert info.labeled == [2] and info.unlabeled == [0, 10]
    (root / "set01" / "bkg.png").write_bytes(b"")
    for n in (1, 2, 10, 11):
        (root / f"set{n}" / "bkg.png").write_bytes(b"")
    assert [i.number for i in store.scan_root(root)] == [1, 2, 10, 11]


def _claim(root, barrier, q):
    barrier.wait()  # all at once, so their listings of the folder are taken together
    q.put(store.create_set(root)[0])


def test_concurrent_set_creation_never_shares_a_number(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    ctx = mp.get_context("spawn")
    q, barrier = ctx.Queue(), ctx.Barrier(4)
    procs = [ctx.Process(target=_claim, args=(root, barrier, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = sorted(q.get(timeout=5) for _ in procs)
    assert got == [1, 2, 3, 4]
    assert sorted(p.name for p in root.iterdir()) == ["set1", "set2", "set3", "set4"]  # (claimed, still empty)


def _save_frames_without_links(root, barrier, q, n):
    import errno as e

    def no_links(src, dst, *args, **kwargs):  # as on FAT32 / exFAT
        raise OSError(e.EPERM, "Operation not permitted")

    os.link = no_links
    image = np.zeros((4, 4, 3), np.uint8)
    barrier.wait()
    q.put([store.save_frame(root, 1, image)[0] for _ in range(n)])


def test_two_capture_tools_on_one_set_never_share_a_frame_without_hard_links(tmp_path):
    # Where hard links are refused, a name was checked and then renamed onto: two processes saving
    # into one set both took a number now and then (17 of 600), one frame lost, both said "saved".
    root = tmp_path / "images"
    store.create_set(root)
    ctx = mp.get_context("spawn")
    q, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_save_frames_without_links, args=(root, barrier, q, 150)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    taken = got[0] + got[1]
    assert len(set(taken)) == 300 and store.list_frames(root / "set1") == sorted(taken)
    assert not [p for p in (root / "set1").iterdir() if p.name.endswith(".tmp")]


def test_a_set_listed_as_free_but_taken_meanwhile_is_not_shared(tmp_path, monkeypatch):
    # Another process made set1 after this one listed the folder: the claim must not land in set1.
    root = tmp_path / "images"
    store.create_set(root)
    (root / "set1" / "bkg.png").write_bytes(b"theirs")
    stale = iter([1])
    real = store.next_set_number
    monkeypatch.setattr(store, "next_set_number", lambda r: next(stale, None) or real(r))
    assert store.create_set(root) == (2, root / "set2")
    (root / "set2" / "bkg.png").write_bytes(b"ours")
    assert (root / "set1" / "bkg.png").read_bytes() == b"theirs" and store.list_sets(root) == [1, 2]


def test_save_background_and_frames_roundtrip(tmp_path):
    root = tmp_path / "images"
    n1, bkg1 = store.save_background(root, _img(value=10))
    n2, _ = store.save_background(root, _img(value=20))
    assert (n1, n2) == (1, 2)
    k0, p0 = store.save_frame(root, 1, _img(value=30))
    k1, p1 = store.save_frame(root, 1, _img(value=40))
    assert (k0, k1) == (0, 1) and p1.name == "1.png"
    assert np.array_equal(store.read_image(p0), _img(value=30))
    assert np.array_equal(store.read_image(bkg1), _img(value=10))
    # existing sets are never reused, even after a gap
    store.save_background(root, _img())
    assert store.list_sets(root) == [1, 2, 3]


@pytest.mark.parametrize("shape", [(0, 0, 3), (480, 0, 3), (0, 640)])
def test_an_empty_image_is_a_store_error_and_writes_nothing(tmp_path, shape):
    # OpenCV's encoder stopped on it with its own assertion (cv2.error), which no caller catches.
    root = tmp_path / "images"
    store.save_background(root, _img())
    with pytest.raises(StoreError, match=r"could not encode an empty image \(%dx%d\)" % (shape[1], shape[0])):
        store.save_frame(root, 1, np.zeros(shape, np.uint8))
    with pytest.raises(StoreError, match="empty image"):
        store.write_image(tmp_path / "0_mask.png", np.zeros(shape[:2], np.uint8))
    assert sorted(os.listdir(root / "set1")) == ["bkg.png"] and not (tmp_path / "0_mask.png").exists()
    assert store.save_frame(root, 1, _img())[0] == 0  # the next frame is still 0.png


def test_writes_never_overwrite_unless_asked(tmp_path):
    p = tmp_path / "0_mask.png"
    store.write_image(p, np.zeros((4, 4), np.uint8))
    with pytest.raises(StoreError, match="refusing to overwrite"):
        store.write_image(p, np.full((4, 4), 255, np.uint8))
    assert store.read_mask(p).max() == 0
    store.write_image(p, np.full((4, 4), 255, np.uint8), overwrite=True)
    assert store.read_mask(p).min() == 255
    assert [x.name for x in tmp_path.iterdir()] == ["0_mask.png"]  # no temp file left


def test_crash_between_write_and_rename_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "0.png"

    def crash(*a, **k):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "link", crash)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.write_image(target, _img())
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    # and an existing file survives a crashed overwrite untouched
    monkeypatch.undo()
    store.write_image(target, _img(value=7))
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.write_image(target, _img(value=99), overwrite=True)
    assert np.array_equal(store.read_image(target), _img(value=7))


def test_a_file_that_cannot_be_put_in_place_is_named_not_its_temporary(tmp_path):
    # "Error: weights/last.pt.15694.tmp: Is a directory" named a file the user never made.
    (tmp_path / "last.pt").mkdir()
    with pytest.raises(IsADirectoryError) as exc:
        store.write_bytes_atomic(tmp_path / "last.pt", b"x", overwrite=True)
    assert exc.value.filename == str(tmp_path / "last.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_full_disk_is_named_by_the_file_being_written(tmp_path, monkeypatch):
    # write() on a full disk raises an OSError that names no file; the user must learn which one.
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "out" / "3_mask.png"
    target.parent.mkdir()
    with pytest.raises(OSError) as exc:
        store.write_image(target, _img())
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # no temporary file left behind

    @click.command()
    @reports_errors
    def write():  # what every command says about it
        store.write_image(target, _img())

    res = CliRunner().invoke(write, [])
    assert res.exit_code == 1 and res.output.strip() == f"Error: {target}: No space left on device"


def test_failed_background_write_leaves_no_empty_set_behind(tmp_path, monkeypatch):
    # A disk that fills up while bkg.png is written must not leave setN/ without a bkg.png behind:
    # training and the labeler refuse such a set ("background missing").
    root = tmp_path / "images"
    store.save_background(root, _img(value=10))

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save_background(root, _img(value=20))
    monkeypatch.undo()
    assert store.list_sets(root) == [1]
    assert [info.number for info in store.scan_root(root)] == [1]
    n, bkg = store.save_background(root, _img(value=30))
    assert (n, bkg) == (2, root / "set2" / "bkg.png")
    assert np.array_equal(store.read_image(bkg), _img(value=30))


def test_validation_errors_name_the_file(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    with pytest.raises(StoreError, match="set folder not found: .*set5"):
        store.scan_set(root, 5)
    (root / "set5").mkdir(parents=True)
    with pytest.raises(StoreError, match="background missing: .*set5/bkg.png"):
        store.scan_set(root, 5)
    (root / "set5" / "bkg.png").mkdir()  # there, but no image: not "missing"
    with pytest.raises(StoreError, match="background is not a file: .*set5/bkg.png$"):
        store.scan_set(root, 5)
    (root / "set5" / "bkg.png").rmdir()
    # Links that lead to no file (they were "missing", though a name is there): said what they are,
    # for the background, a frame and a mask alike.
    (root / "set5" / "bkg.png").symlink_to("gone.png")
    with pytest.raises(StoreError, match="background is a link to nothing: .*set5/bkg.png$"):
        store.scan_set(root, 5)
    (root / "set5" / "bkg.png").unlink()
    (root / "set5" / "bkg.png").symlink_to("other.png")
    (root / "set5" / "other.png").symlink_to("bkg.png")
    with pytest.raises(StoreError, match="background is a symlink loop: .*set5/bkg.png$"):
        store.scan_set(root, 5)
    with pytest.raises(StoreError, match="frame is a symlink loop: .*set5/other.png$"):
        store.read_image(root / "set5" / "other.png", "frame")
    with pytest.raises(StoreError, match="mask is a symlink loop: .*set5/other.png$"):
        store.read_mask(root / "set5" / "other.png")
    for name in ("bkg.png", "other.png"):
        (root / "set5" / name).unlink()
    s = root / "set5"
    cv2.imwrite(str(s / "bkg.png"), _img())
    # A number too long for a file name was "File name too long" (an OSError, exit 1).
    with pytest.raises(StoreError, match=r"set folder not found: .*set9{300} \(sets here: 5\)$"):
        store.scan_set(root, int("9" * 300))
    (s / "0.png").write_bytes(b"not a png at all")
    info = store.scan_set(root, 5)
    with pytest.raises(StoreError, match="frame unreadable or corrupt: .*0.png"):
        store.read_frame(info, 0)
    cv2.imwrite(str(s / "1.png"), _img(h=40))
    with pytest.raises(StoreError, match=r"frame size 64x40 differs from bkg.png 64x48: .*1.png"):
        store.read_frame(info, 1, (48, 64, 3))
    cv2.imwrite(str(s / "2.png"), _img())
    cv2.imwrite(str(s / "2_mask.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(StoreError, match=r"mask size 10x10 differs from its frame 64x48: .*2_mask.png"):
        list(store.read_labeled(store.labeled_sets(root)))
    with pytest.raises(StoreError, match="mask missing"):
        store.read_mask(s / "9_mask.png")


def test_a_set_folder_given_as_the_images_root_is_named(tmp_path):
    root = tmp_path / "images"
    number, path = store.save_background(root, _img())
    store.check_root(root)  # the root itself is fine
    store.check_root(tmp_path / "missing")  # and so is one that does not exist yet (capture makes it)
    hint = f"--images {path.parent} is a set folder; give the folder that holds it: {root}"
    with pytest.raises(StoreError) as exc:
        store.check_root(path.parent)
    assert str(exc.value) == hint
    with pytest.raises(StoreError) as exc:  # the labeler's "set folder not found" says the same
        store.scan_set(path.parent, number)
    assert str(exc.value) == hint
    # A folder named like a set but without bkg.png may be a root of its own.
    (tmp_path / "set9").mkdir()
    store.check_root(tmp_path / "set9")
    # A set folder under another name, or reached through a link, is one by what it holds.
    (tmp_path / "current").symlink_to(path.parent)
    (root / "mine").mkdir()
    (root / "mine" / "bkg.png").write_bytes(path.read_bytes())
    for other in (tmp_path / "current", root / "mine"):
        with pytest.raises(StoreError) as exc:
            store.check_root(other)
        assert str(exc.value) == (f"--images {other} holds bkg.png and no set folders, as a set folder does; "
                                  f"give the folder that holds the sets (set1, set2, ...)")
    store.check_root(root)  # (the root holding them is fine)
    # So is one with a background of its own beside its sets (a copy left there): it is no set folder.
    (root / "bkg.png").write_bytes(path.read_bytes())
    store.check_root(root)
    assert [info.number for info in store.scan_root(root)] == [number]


def test_a_set_folder_that_links_to_nothing_is_named(tmp_path):
    # images/set2 -> a drive not mounted: every tool left the set out without a word, and asked for
    # by number it was "not found" (sets here: 1) while the link was there.
    root = tmp_path / "images"
    store.save_background(root, _img())
    (root / "set2").symlink_to(tmp_path / "usb" / "set2")
    with pytest.warns(UserWarning) as said:
        assert store.list_sets(root) == [1]
        assert [info.number for info in store.scan_root(root)] == [1]
    assert [str(w.message) for w in said] == [
        f"{root / 'set2'} is a link to nothing ({tmp_path / 'usb' / 'set2'}); that set is left out"]  # once
    with pytest.raises(StoreError) as exc:
        store.scan_set(root, 2)
    assert str(exc.value) == f"set folder is a link to nothing: {root / 'set2'} -> {tmp_path / 'usb' / 'set2'}"
    assert store.create_set(root)[0] == 3  # a new set does not take the link's number


def test_a_set_whose_background_save_was_cut_off_is_left_out(tmp_path):
    # The capture tool killed (or the power lost) while writing a new set's bkg.png left setN/ with
    # only bkg.png.PID.RANDOM.tmp: training, evaluate and the labeler's walk then stopped at
    # "background missing" for good. One still being written (its writer alive) is left out quietly.
    import subprocess
    import sys

    root = tmp_path / "images"
    store.save_background(root, _img())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (root / "set2").mkdir()
    (root / "set2" / f"bkg.png.{gone}.a1b2c3.tmp").write_bytes(b"\x89PNG")
    (root / "set3").mkdir()
    (root / "set3" / f"bkg.png.{os.getppid()}.d4e5f6.tmp").write_bytes(b"")  # its writer at work
    (root / "set5").mkdir()  # a number no process has (a name made by hand, or damaged): gone
    (root / "set5" / f"bkg.png.{10**20}.0a0b0c.tmp").write_bytes(b"")
    with pytest.warns(UserWarning) as said:
        assert store.list_sets(root) == [1]
        assert [info.number for info in store.scan_root(root)] == [1]
    assert sorted(str(w.message) for w in said) == [
        f"{root / 'set2'} holds no background, only bkg.png.{gone}.a1b2c3.tmp (a save cut off); that set is left out",
        f"{root / 'set5'} holds no background, only bkg.png.{10**20}.0a0b0c.tmp (a save cut off); that set is left out"]
    assert store.create_set(root)[0] == 4  # their numbers are not taken again
    store.write_image(root / "set4" / "bkg.png", _img())
    # Killed between the folder's mkdir and the temporary file's creation: an empty set folder, left
    # out too (training and evaluate stopped at "background missing"); said once older than a save.
    (root / "set6").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # just made: a save may be under way
        assert store.list_sets(root) == [1, 4]
    os.utime(root / "set6", (time.time() - 60, time.time() - 60))
    with pytest.warns(UserWarning) as said:
        assert [info.number for info in store.scan_root(root)] == [1, 4]
    assert [str(w.message) for w in said] == [
        f"{root / 'set6'} is empty (a new set whose background was never written: a save cut off?); that set is "
        f"left out"]
    assert store.create_set(root)[0] == 7
    store.write_image(root / "set7" / "bkg.png", _img())
    # Anything else there (a frame, a file of the user's) and the set is not passed over.
    (root / "set2" / "0.png").write_bytes(b"")
    assert store.list_sets(root) == [1, 2, 4, 7]
    with pytest.raises(StoreError, match="background missing: .*set2/bkg.png"):
        store.scan_root(root)


def test_a_capture_sets_own_files_are_refused_as_outputs(tmp_path):
    root = tmp_path / "images"
    _, bkg = store.save_background(root, _img())
    _, frame = store.save_frame(root, 1, _img())
    folder = bkg.parent
    for name in ("bkg.png", "0.png", "7.png", "0_mask.png", "3_pred.png", "0.json"):  # existing or not
        with pytest.raises(StoreError) as exc:
            store.refuse_capture_file(folder / name, "--json")
        assert str(exc.value) == (f"--json {folder / name} is a file of the capture set {folder}; "
                                  f"write it somewhere else")
    # Other names in a set folder, capture names elsewhere, and folders that are no capture are fine.
    for path in (folder / "scores.json", folder / "07.png", root / "0.png", tmp_path / "bkg.png",
                 tmp_path / "missing" / "0.png"):
        store.refuse_capture_file(path, "--json")
    assert frame.name == "0.png"
    # A set folder whose bkg.png is gone (deleted, or not yet copied back) still holds captured frames.
    (folder / "bkg.png").unlink()
    for name in ("0.png", "1.png", "0_mask.png"):
        with pytest.raises(StoreError, match="is a file of the capture set"):
            store.refuse_capture_file(folder / name, "--onnx")


def test_colour_masks_are_read_by_any_colour_and_alpha_only_ones_by_alpha(tmp_path):
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 20:40] = 255
    red = np.zeros((48, 64, 3), np.uint8)
    red[truth > 0] = (0, 0, 255)  # BGR: a person painted red, blue channel 0
    grey = cv2.cvtColor(truth, cv2.COLOR_GRAY2BGR)
    alpha = np.zeros((48, 64, 4), np.uint8)
    alpha[..., 3] = truth
    for name, image in (("red", red), ("grey", grey), ("alpha", alpha)):
        path = tmp_path / f"{name}_mask.png"
        cv2.imwrite(str(path), image)
        assert np.array_equal(store.read_mask(path, (48, 64)), truth), name


def test_a_zero_one_mask_is_read_as_zero_255(tmp_path):
    # Labels from tools that write 1 for the person would otherwise all turn to background at 128.
    m = np.zeros((8, 8), np.uint8)
    m[2:6, 3:7] = 1
    cv2.imwrite(str(tmp_path / "0_mask.png"), m)
    with pytest.warns(UserWarning, match="0/1 values, read as 0/255"):
        out = store.read_mask(tmp_path / "0_mask.png")
    assert np.array_equal(out, m * 255)
    cv2.imwrite(str(tmp_path / "1_mask.png"), m.astype(np.uint16))  # the same in 16 bit
    assert np.array_equal(store.read_mask(tmp_path / "1_mask.png"), m * 255)
    cv2.imwrite(str(tmp_path / "2_mask.png"), m.astype(np.uint16) * 65535)
    assert np.array_equal(store.read_mask(tmp_path / "2_mask.png"), m * 255)


def test_non_binary_mask_is_binarized_with_one_warning(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:, 4:] = 200
    m[0, 0] = 127
    p1, p2 = tmp_path / "0_mask.png", tmp_path / "1_mask.png"
    cv2.imwrite(str(p1), m)
    cv2.imwrite(str(p2), m)
    with pytest.warns(UserWarning, match="binarized at 128"):
        out = store.read_mask(p1)
    assert set(np.unique(out)) == {0, 255}
    assert out[0, 0] == 0 and out[0, 5] == 255
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.read_mask(p2)  # same folder: warned once already


def test_every_dev_set_loads(dev_root):
    sets = store.list_sets(dev_root)
    assert sets == list(range(1, 13))
    samples = list(store.read_labeled(store.labeled_sets(dev_root)))
    assert len(samples) == 52
    for s in samples:
        assert s.frame.shape == s.background.shape == (480, 640, 3)
        assert s.mask.shape == (480, 640) and set(np.unique(s.mask)) <= {0, 255}
    empty = [s for s in samples if s.mask.max() == 0]
    assert len(empty) == 12  # the last frame of each set repeats bkg.png


def test_temporary_names_fit_the_file_name_limit(tmp_path):
    # A name that fits (255 bytes) must still fit with the temporary tail: it was written as NAME.PID.tmp,
    # which was too long ("File name too long", naming a file the user never asked for).
    for name in ("a" * 251 + ".png", "é" * 125 + "a.png"):  # 255 bytes each; é is two bytes in UTF-8
        path = tmp_path / name
        assert len(path.name.encode()) == 255
        store.write_image(path, _img())
        assert [p.name for p in tmp_path.iterdir()] == [name]
        assert store.read_image(path).shape == (48, 64, 3)
        path.unlink()
    tmp = store.temporary_path(tmp_path / ("b" * 250 + ".mp4"), ".tmp", keep_suffix=True)
    assert len(tmp.name.encode()) <= 255 and tmp.name.endswith(".tmp.mp4") and tmp.parent == tmp_path
    # Two long names alike up to the cut keep apart temporary names (threads of one process, say).
    a, b = (store.temporary_path(tmp_path / ("c" * 250 + end), ".1.tmp") for end in ("_0.png", "_1.png"))
    assert a != b and len(a.name.encode()) <= 255 and len(b.name.encode()) <= 255
    assert store.temporary_path(tmp_path / "clip.mp4", ".tmp", keep_suffix=True).name == "clip.tmp.mp4"


def test_removing_a_temporary_file_never_raises(tmp_path):
    # It runs while another error is on its way, which must not be replaced by one of its own.
    there = tmp_path / "t.tmp"
    there.write_bytes(b"x")
    store.remove_temporary(there)
    assert not there.exists()
    store.remove_temporary(there)  # gone already
    store.remove_temporary(tmp_path / ("c" * 300))  # a name too long to exist


def test_removing_a_temporary_file_in_a_read_only_folder_never_raises(read_only_folder):
    # On a read-only folder even removing a file that was never made fails (EROFS), and that error
    # replaced the one that mattered.
    store.remove_temporary(read_only_folder / "never-made.tmp")
    with pytest.raises(OSError):  # what it guards against
        os.unlink(read_only_folder / "never-made.tmp")


def test_a_place_that_cannot_be_written_is_refused_up_front(tmp_path, read_only_folder):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    store.refuse_unwritable(tmp_path / "new" / "deeper" / "a.json", "--json")  # made when written
    store.refuse_unwritable(tmp_path / "out", "--save-masks", folder=True)
    with pytest.raises(StoreError, match=r"^--json .*/notes.txt/a.json: .*/notes.txt is a file, not a folder$"):
        store.refuse_unwritable(afile / "a.json", "--json")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # was "is a file"
    with pytest.raises(StoreError, match=r"^--images .*/gone: .*/gone is a link to nothing, not a folder$"):
        store.refuse_unwritable(tmp_path / "gone", "--images", folder=True)
    with pytest.raises(StoreError, match=r"^--save-masks .*/read-only/m/set3: cannot write in .*/read-only "
                                         r"\(read-only, or no permission\)$"):
        store.refuse_unwritable(read_only_folder / "m" / "set3", "--save-masks", folder=True)


def test_a_folder_that_may_be_written_but_not_entered_is_refused_up_front(tmp_path, unprivileged):
    # Mode rw- without x: nothing in it can be made or opened, so every save there would fail later.
    folder = tmp_path / "no-entry"
    folder.mkdir()
    folder.chmod(0o600)
    code = ("from humanseg import store\nfrom humanseg.errors import StoreError\ntry:\n"
            f"    store.refuse_unwritable({str(folder / 'a.json')!r}, '--json')\n"
            "except StoreError as exc:\n    print(exc)\n")
    try:
        r = subprocess.run(unprivileged([sys.executable, "-c", code]), cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    finally:
        folder.chmod(0o700)
    assert r.stdout == f"--json {folder / 'a.json'}: cannot write in {folder} (read-only, or no permission)\n", r


def _png(width, height, colour_type, pixels: np.ndarray, extra=()) -> bytes:
    """A PNG written here byte by byte (8-bit samples, no filter), for the kinds OpenCV does not
    write: grey + alpha (colour type 4), palette (3) with a transparency chunk."""
    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    rows = b"".join(b"\0" + pixels[y].tobytes() for y in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    return (store.PNG_SIGNATURE + chunk(b"IHDR", header) + b"".join(chunk(k, b) for k, b in extra)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_nearly_transparent_pixel_of_a_mask_is_not_person(tmp_path):
    # White on black with an alpha that varies: where the alpha is under half (a cut-out's faint
    # fringe, a layer faded out), the pixel is background whatever its colour.
    image = np.zeros((8, 8, 4), np.uint8)
    image[2:6, 2:6, :3] = 255
    image[:, :4, 3], image[:, 4:, 3] = 255, 40
    cv2.imwrite(str(tmp_path / "0_mask.png"), image)
    mask = store.read_mask(tmp_path / "0_mask.png", (8, 8))
    assert not mask[:, 4:].any() and (mask[2:6, 2:4] == 255).all() and mask.sum() == 8 * 255


def test_masks_with_alpha_are_read_by_what_carries_the_label(tmp_path):
    # An opaque mask of an empty room (black, alpha 255) was read as all person from its alpha; so was
    # a white image with the label in its alpha, and a palette whose transparent entry is white.
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 20:40] = 255
    empty, opaque = np.zeros((48, 64), np.uint8), np.full((48, 64), 255, np.uint8)
    cases = {
        "opaque black, empty": (np.dstack([empty] * 3 + [opaque]), empty),
        "opaque, person in colour": (np.dstack([truth] * 3 + [opaque]), truth),
        "white, person in alpha": (np.dstack([opaque] * 3 + [truth]), truth),
        "black, person in alpha": (np.dstack([empty] * 3 + [truth]), truth),
        "transparent everywhere": (np.dstack([opaque] * 3 + [empty]), empty),
    }
    for name, (image, expected) in cases.items():
        path = tmp_path / "0_mask.png"
        cv2.imwrite(str(path), image)
        assert np.array_equal(store.read_mask(path, (48, 64)), expected), name
    grey_alpha = {"empty": (np.dstack([empty, opaque]), empty), "person": (np.dstack([truth, opaque]), truth)}
    for name, (pixels, expected) in grey_alpha.items():  # grey + alpha, opaque
        path = tmp_path / f"la_{name}_mask.png"
        path.write_bytes(_png(64, 48, 4, pixels))
        assert np.array_equal(store.read_mask(path, (48, 64)), expected), name
    # Where the alpha varies and the colour is not one value: a transparent pixel is never person. A
    # cut-out (the person's own picture on transparency, as background removers write) lost its dark
    # clothes to the colour's threshold; a black person on transparent white was read inverted.
    picture = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cut_out = np.dstack([np.where(truth[..., None] > 0, picture, 0), truth])
    black_on_white = np.dstack([np.where(truth > 0, 0, 255).astype(np.uint8)] * 3 + [truth])
    soft = truth.copy()
    soft[10:30, 20] = 128  # a white label with a grey outline, over transparent white
    on_transparent_white = np.dstack([np.where(truth > 0, soft, 255).astype(np.uint8)] * 3 + [truth])
    erased = np.dstack([truth] * 3 + [opaque.copy()])
    erased[:5, :5, 3] = 0  # a black-and-white mask with a bit of it erased to transparency
    for name, image in (("cut-out", cut_out), ("black on white", black_on_white),
                        ("white on transparent white", on_transparent_white), ("erased", erased)):
        path = tmp_path / name.replace(" ", "_") / "0_mask.png"
        path.parent.mkdir()
        cv2.imwrite(str(path), image)
        if image is on_transparent_white:  # its grey outline (128) is binarized, and said
            with pytest.warns(UserWarning, match="binarized at 128"):
                assert np.array_equal(store.read_mask(path, (48, 64)), truth), name
        else:
            assert np.array_equal(store.read_mask(path, (48, 64)), truth), name
    # A mask of 0 and one other value (0/1, a class number; 8-bit values in 16 bits) with a transparent
    # strip is read by its colour where opaque, as a 0/255 one is (a review found it read by its alpha).
    for person, dtype in ((1, np.uint8), (15, np.uint8), (255, np.uint16)):
        strip = np.dstack([(truth > 0).astype(dtype) * person] * 3 + [np.full((48, 64), np.iinfo(dtype).max, dtype)])
        strip[:, :5, 3] = 0
        path = tmp_path / f"class_{person}_{np.dtype(dtype).name}" / "0_mask.png"
        path.parent.mkdir()
        cv2.imwrite(str(path), strip)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # (0/1 and 0/15 are said as such)
            assert np.array_equal(store.read_mask(path, (48, 64)), truth), (person, dtype)
    # A palette: entry 0 white and transparent (background), entry 1 white and opaque (person).
    path = tmp_path / "palette_mask.png"
    path.write_bytes(_png(64, 48, 3, (truth > 0).astype(np.uint8),
                          extra=[(b"PLTE", bytes([255, 255, 255, 255, 255, 255])), (b"tRNS", bytes([0, 255]))]))
    assert np.array_equal(store.read_mask(path, (48, 64)), truth)


def test_float_images_and_masks_are_read_at_their_values(tmp_path):
    # A 32-bit float TIFF (a documented --backgrounds / --source type): OpenCV put 0..1 data through a
    # tone curve (10 read as 46, 128 as 163) and made 0..255 data white; a 0..1 mask was read as empty.
    frame = _img()
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 20:40] = 255
    for name, data in (("unit", frame / 255), ("bytes", frame.astype(np.float64))):
        for dtype in (np.float32, np.float64):
            path = tmp_path / f"{name}.tif"
            assert cv2.imwrite(str(path), data.astype(dtype))
            read = store.read_image(path, "frame")
            assert read.dtype == np.uint8 and np.abs(read.astype(int) - frame).max() <= 5, (name, dtype)
    for scale in (1.0, 255.0):
        path = tmp_path / "0_mask.tif"
        assert cv2.imwrite(str(path), (truth / 255 * scale).astype(np.float32))
        assert np.array_equal(store.read_mask(path, (48, 64)), truth), scale


def test_16_bit_masks_and_images_holding_8_bit_values(tmp_path):
    # A 16-bit mask of 0/255 was cut at half the 16-bit range: all background, without a word; a
    # 16-bit frame of 0..255 values was decoded by its top 8 bits: black.
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 20:40] = 255
    for person in (255, 1000, 65535):  # 8-bit values in 16 bits, a class number, the full range
        cv2.imwrite(str(tmp_path / "0_mask.png"), (truth > 0).astype(np.uint16) * person)
        assert np.array_equal(store.read_mask(tmp_path / "0_mask.png"), truth), person
    two = np.where(truth > 0, 65535, 1000).astype(np.uint16)  # two values, neither 0: cut at half the range
    cv2.imwrite(str(tmp_path / "0_mask.png"), two)
    with pytest.warns(UserWarning, match="binarized at 128"):
        assert np.array_equal(store.read_mask(tmp_path / "0_mask.png"), truth)
    graded = (truth > 0).astype(np.uint16) * 40000
    graded[0, 0] = 30000  # several levels of the 16-bit range: cut at its half
    cv2.imwrite(str(tmp_path / "1_mask.png"), graded)
    assert np.array_equal(store.read_mask(tmp_path / "1_mask.png"), truth)
    # Soft edges in 16 bits, full range or a 12-bit scale (as frames are read): binarized at half the
    # range with the 8-bit mask's warning (the 12-bit one was read as empty, both without a word).
    soft = cv2.GaussianBlur(truth, (7, 7), 2)
    for scale in (257, 16):
        folder = tmp_path / f"soft{scale}"
        folder.mkdir()
        cv2.imwrite(str(folder / "0_mask.png"), soft.astype(np.uint16) * scale)
        with pytest.warns(UserWarning, match=r"mask has values other than 0/255, binarized at 128: "):
            got = store.read_mask(folder / "0_mask.png")
        assert np.array_equal(got, np.where(soft >= 128, 255, 0).astype(np.uint8)), scale
        assert abs(int(np.count_nonzero(got)) - int(np.count_nonzero(truth))) < 40, scale
    image = _img()
    image[0, 0] = 255  # 8-bit data with a white pixel, in 16 bits: still 8-bit data, not 12-bit (1/16)
    for name, wide in (("low", image.astype(np.uint16)), ("full", image.astype(np.uint16) * 257)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), wide)
        back = store.read_image(tmp_path / f"{name}.png")
        assert back.dtype == np.uint8 and np.array_equal(back, image), name


def test_16_bit_images_of_a_10_or_12_bit_camera_are_read_as_12_bit_data(tmp_path, dev_root):
    # OpenCV keeps a 16-bit image's top 8 bits: 12-bit data (0..4095) came out as 0..15, near black,
    # and the model found nobody in any frame (evaluate 0.33 mIoU, only the empty room right).
    image = store.read_image(dev_root / "set3" / "1.png")
    cv2.imwrite(str(tmp_path / "12.png"), image.astype(np.uint16) * 16 + 7)
    assert np.array_equal(store.read_image(tmp_path / "12.png"), image)
    cv2.imwrite(str(tmp_path / "10.png"), image.astype(np.uint16) * 4 + 1)  # 0..63: dim, not black
    assert np.abs(store.read_image(tmp_path / "10.png").astype(int) - image // 4).max() <= 1
    # One scale for every image of a camera: a dark background (brightest 900) and a frame with a
    # glint (1800) showed one wall at 150 and 38 when each was scaled by its own brightest value.
    wall = np.full((8, 8, 3), 600, np.uint16)
    for top in (900, 1800):
        wall[0, 0] = top
        cv2.imwrite(str(tmp_path / f"{top}.png"), wall)
        assert store.read_image(tmp_path / f"{top}.png")[4, 4].tolist() == [38, 38, 38], top
    # A 16-bit image using more of its range is read as OpenCV reads it.
    wall[0, 0] = 12000
    cv2.imwrite(str(tmp_path / "16.png"), wall)
    assert np.array_equal(store.read_image(tmp_path / "16.png"), cv2.imread(str(tmp_path / "16.png")))


def test_a_mask_of_zero_and_a_class_number_counts_the_number_as_person(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:6, 3:7] = 15  # a class number, as segmentation data sets write it: was read as empty
    cv2.imwrite(str(tmp_path / "0_mask.png"), m)
    with pytest.warns(UserWarning, match=r"mask has 0/15 values, read as 0/255"):
        assert np.array_equal(store.read_mask(tmp_path / "0_mask.png"), (m > 0).astype(np.uint8) * 255)
    faint = np.zeros((8, 8), np.uint8)
    faint[2:6, 3:7] = 40
    faint[0, 0] = 90  # several levels, none reaching 128: empty, and the warning says so (in the
    cv2.imwrite(str(tmp_path / "1_mask.png"), faint)  # same folder: the warning above was of another kind)
    with pytest.warns(UserWarning, match=r"binarized at 128 \(none reaches 128: read as empty\)"):
        assert not store.read_mask(tmp_path / "1_mask.png").any()


def test_a_png_with_damaged_data_is_named_without_libpngs_line(tmp_path, capfd):
    # A PNG whose header and end are whole but whose data is damaged made libpng print "libpng error:
    # bad adaptive filter value" before the tool's own line.
    good = store.encode_png(_img())
    png = bytearray(good)
    png[60:200] = bytes(140)
    for name in ("0.png", "0_mask.png"):
        (tmp_path / name).write_bytes(png)
    capfd.readouterr()
    with pytest.raises(StoreError, match="frame unreadable or corrupt"):
        store.read_image(tmp_path / "0.png", "frame")
    with pytest.raises(StoreError, match="mask unreadable or corrupt"):
        store.read_mask(tmp_path / "0_mask.png")
    for cut in (len(good) - 1, len(good) // 2, 20):  # cut short anywhere
        assert store.decode_image(np.frombuffer(good[:cut], np.uint8)) is None
    assert capfd.readouterr().err == ""
    assert np.array_equal(store.decode_image(np.frombuffer(good + b"trailing", np.uint8)), _img())


def test_a_label_left_out_is_said_once(tmp_path):
    # A K_mask.png whose K.png was deleted or named K.PNG, or a folder named like a mask, was passed
    # over in silence: training and evaluate ran on one frame fewer.
    root = tmp_path / "images"
    _, bkg = store.save_background(root, _img())
    folder = bkg.parent
    for k in range(3):
        store.save_frame(root, 1, _img())
        store.write_image(folder / f"{k}_mask.png", np.zeros((48, 64), np.uint8))
    (folder / "1.png").rename(folder / "1.PNG")
    (folder / "5_mask.png").mkdir()
    (folder / "2_mask.png").rename(folder / "02_mask.png")
    with pytest.warns(UserWarning) as caught:
        info = store.scan_set(root, 1)
        store.scan_set(root, 1)  # once per folder
    assert info.labeled == [0]
    assert [str(w.message) for w in caught] == [
        f"{folder / '02_mask.png'} is not named as the layout's masks are (K_mask.png, K without leading "
        f"zeros); that label is left out (and 2 more there)"]
    # A frame captured next takes a number no label holds: a 9.png would take on 9_mask.png's label.
    assert store.next_frame_number(folder) == 3
    store.write_image(folder / "9_mask.png", np.zeros((48, 64), np.uint8))
    assert store.next_frame_number(folder) == 10
    (folder / "9_mask.png").unlink()
    (folder / "7.json").write_text("{}")
    assert store.next_frame_number(folder) == 8
    (folder / "7.json").unlink()
    (folder / "02_mask.png").rename(folder / "2_mask.png")
    (folder / "1.PNG").rename(folder / "1.png")
    (folder / "5_mask.png").rmdir()
    (folder / "2.png").unlink()
    (folder / "2.png").mkdir()  # a folder where a frame belongs
    with pytest.raises(StoreError, match=r"^frame is not a file: .*2\.png$"):
        store.read_frame(store.scan_set(root, 1), 2)


def test_names_near_the_layouts_are_named_when_nothing_is_found(tmp_path):
    # A root of set01/ set02/ (or frames 00.png, 1.PNG) said only "no labeled frames found".
    root = tmp_path / "images"
    for name in ("set01", "Set2", "set03", "set04", "notes"):
        (root / name).mkdir(parents=True)
    assert store.passed_over(root, sets=True) == " (Set2, set01, set03, ... passed over: the layout's names are " \
                                                 "set1, set2, ...)"
    with pytest.raises(StoreError, match=r"set folder not found: .*set5 \(Set2, set01, set03, \.\.\. passed over"):
        store.scan_set(root, 5)
    for name in ("00.png", "1.PNG", "bkg.png", "2_mask.png"):
        (root / "set01" / name).write_bytes(b"")
    assert store.passed_over(root / "set01", sets=False) == " (00.png, 1.PNG passed over: the layout's names " \
                                                           "are 0.png, 1.png, ...)"
    (root / "set1").mkdir()
    store.write_image(root / "set1" / "0.png", _img())
    assert store.passed_over(root / "set1", sets=False) == "" and store.passed_over(tmp_path / "none", True) == ""
    # A name with a space around it (" 1.png", "set2 ") was passed over without a word.
    (root / "set1" / " 1.png").write_bytes(b"")
    (tmp_path / "other" / "set2 ").mkdir(parents=True)
    assert store.passed_over(root / "set1", sets=False) == " (' 1.png' passed over: the layout's names are 0.png, " \
                                                           "1.png, ...)"
    assert store.passed_over(tmp_path / "other", sets=True) == " ('set2 ' passed over: the layout's names are " \
                                                               "set1, set2, ...)"
    # A camera app's JPEGs (0.jpg, and bkg.jpg for the background) were passed over without a word:
    # "no labeled frames found ... (label some with label_images.py)" for a set with labels.
    jpegs = root / "set7"
    jpegs.mkdir()
    for name in ("0.jpg", "1.JPEG", "0_mask.png", "bkg.jpg"):
        (jpegs / name).write_bytes(b"")
    assert store.passed_over(jpegs, sets=False) == " (0.jpg, 1.JPEG passed over: the layout's names are 0.png, " \
                                                   "1.png, ...)"
    with pytest.raises(StoreError, match=r"^background missing: .*set7/bkg\.png \(bkg\.jpg passed over: the "
                                         r"background is bkg\.png, lossless\)$"):
        store.scan_set(root, 7)


def test_a_png_with_a_bad_checksum_only_in_an_ancillary_chunk_is_read(tmp_path, capfd):
    # libpng only warns about those and decodes the image: the tool decodes it, without the warning.
    good = store.encode_png(_img())
    text = b"tEXt" + b"Comment\0made here"
    chunk = (len(text) - 4).to_bytes(4, "big") + text + b"\0\0\0\0"  # a wrong checksum
    png = good[:33] + chunk + good[33:]  # after IHDR (8 + 25 bytes)
    capfd.readouterr()
    assert np.array_equal(store.decode_image(np.frombuffer(png, np.uint8)), _img())
    assert capfd.readouterr().err == ""  # libpng's "tEXt: CRC error" warning: the chunk is left out


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_a_png_with_odd_colour_chunks_is_read_without_libpngs_warnings(tmp_path, capfd):
    # Whole chunks libpng finds odd (an invalid sRGB intent, zero chromaticities, a bad sBIT) printed
    # "libpng warning: ..." on every read of the file: 12 lines for a 6-frame folder in live mode.
    image = _img()
    good = store.encode_png(image)
    odd = (png_chunk(b"sRGB", bytes([9])) + png_chunk(b"cHRM", bytes(32)) + png_chunk(b"sBIT", bytes(3))
           + png_chunk(b"gAMA", (10000).to_bytes(4, "big")))
    capfd.readouterr()
    assert np.array_equal(store.decode_image(np.frombuffer(good[:33] + odd + good[33:], np.uint8)), image)
    assert capfd.readouterr().err == ""
    # Transparency is kept: a palette mask's transparent entry still reads as background.
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    rows = b"".join(b"\0" + bytes(r) for r in mask)
    png = (store.PNG_SIGNATURE + png_chunk(b"IHDR", (6).to_bytes(4, "big") + (4).to_bytes(4, "big") + b"\x08\x03\0\0\0")
           + png_chunk(b"PLTE", b"\xff\xff\xff" * 2) + png_chunk(b"tRNS", b"\x00\xff") + odd
           + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))
    (tmp_path / "0_mask.png").write_bytes(png)
    assert np.array_equal(store.read_mask(tmp_path / "0_mask.png"), mask * 255)
    assert capfd.readouterr().err == ""


def test_a_png_with_a_transparency_or_orientation_chunk_libpng_refuses_is_read_without_its_warning(capfd):
    # Chunks the tool keeps (tRNS, eXIf) but libpng finds malformed, with sound checksums: "libpng
    # warning: eXIf: incorrect byte-order specifier" (an "Exif\0\0" before the TIFF block, as some
    # writers put), "tRNS: invalid" (a wrong length), "tRNS: duplicate", on every read of the file.
    image = _img()
    good = store.encode_png(image)
    for odd in (png_chunk(b"eXIf", b"Exif\0\0" + exif(6, "big")), png_chunk(b"tRNS", b"\x00\x01"),
                png_chunk(b"tRNS", bytes(6)) + png_chunk(b"tRNS", bytes(6))):
        capfd.readouterr()
        assert np.array_equal(store.decode_image(np.frombuffer(good[:33] + odd + good[33:], np.uint8)), image)
        assert capfd.readouterr().err == "", odd[:12]
    # A sound one is still used: an eXIf turned 180 degrees turns the frame (OpenCV applies it).
    turned = store.decode_image(np.frombuffer(good[:33] + png_chunk(b"eXIf", exif(3)) + good[33:], np.uint8))
    assert np.array_equal(turned, image[::-1, ::-1]) and capfd.readouterr().err == ""


def exif(orientation: int | None, order: str = "little", make: bytes | None = None) -> bytes:
    """A TIFF block as EXIF carries it: the tag Orientation (0x0112, a SHORT; none for None), after a
    camera's Make (0x010F, ASCII of up to 4 bytes, held in its entry) when given: tags in ascending
    order, as cameras write them."""
    def n(value, size):
        return value.to_bytes(size, order)
    entries = []
    if make is not None:
        entries.append(n(0x010F, 2) + n(2, 2) + n(len(make), 4) + make.ljust(4, b"\0"))
    if orientation is not None:
        entries.append(n(0x0112, 2) + n(3, 2) + n(1, 4) + n(orientation, 2) + n(0, 2))
    return ({"little": b"II", "big": b"MM"}[order] + n(42, 2) + n(8, 4) + n(len(entries), 2)
            + b"".join(entries) + n(0, 4))


def jpeg_with_exif(jpg: bytes, tiff: bytes, at: int = 2) -> bytes:
    """jpg with an Exif segment (APP1) holding tiff inserted at byte `at` (2: right after SOI)."""
    body = b"Exif\0\0" + tiff
    return jpg[:at] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpg[at:]


def test_a_masks_exif_orientation_turns_it_as_its_frame_is_turned(tmp_path, dev_root):
    # OpenCV turns a frame by its EXIF orientation (read in colour) but not a mask (read unchanged):
    # a set whose PNGs all said "180 degrees" scored mIoU 0.37, its labels upside down; "90 degrees"
    # was refused as mask and frame of different sizes.
    frame = cv2.imread(str(dev_root / "set3" / "1.png"))
    truth = cv2.imread(str(dev_root / "set3" / "1_mask.png"), 0)
    for orientation in range(1, 9):
        for order in ("little", "big"):
            tag = png_chunk(b"eXIf", exif(orientation, order))
            folder = tmp_path / f"o{orientation}{order}"
            folder.mkdir()
            for name, image in (("1.png", frame), ("1_mask.png", truth)):
                png = store.encode_png(image)
                (folder / name).write_bytes(png[:33] + tag + png[33:])
            shown = store.read_image(folder / "1.png")  # as OpenCV and image viewers turn it
            assert np.array_equal(shown, cv2.imread(str(folder / "1.png")))
            assert shown.shape == (frame.shape if orientation < 5 else (640, 480, 3))
            assert np.array_equal(store.orient(frame, orientation), shown)
            # The mask still covers the person: it turned with the frame.
            mask = store.read_mask(folder / "1_mask.png", shown.shape)
            assert np.array_equal(mask, store.orient(truth, orientation))
    # Read as OpenCV reads it for the frame: a chunk after the image data counts, one failing its
    # checksum or holding no TIFF data (its number not 42) does not.
    for where, tag, turned in (("after", png_chunk(b"eXIf", exif(3)), True),
                               ("crc", png_chunk(b"eXIf", exif(3))[:-1] + b"\0", False),
                               ("magic", png_chunk(b"eXIf", exif(3).replace(b"*\0", b"+\0", 1)), False)):
        folder = tmp_path / where
        folder.mkdir()
        for name, image in (("1.png", frame), ("1_mask.png", truth)):
            png = store.encode_png(image)
            at = len(png) - 12 if where == "after" else 33  # before IEND, or after IHDR
            (folder / name).write_bytes(png[:at] + tag + png[at:])
        shown = store.read_image(folder / "1.png")
        assert np.array_equal(shown, store.orient(frame, 3) if turned else frame), where
        assert np.array_equal(store.read_mask(folder / "1_mask.png"), store.orient(truth, 3) if turned else truth)
    assert store.orient(truth, 3)[0, 0] == truth[-1, -1] and store.orient(truth, 6)[0, -1] == truth[0, 0]
    # A JPEG's Exif segment too (a mask saved as JPEG under a .png name is read by its content).
    jpg = cv2.imencode(".jpg", truth, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    (tmp_path / "j_mask.png").write_bytes(jpeg_with_exif(jpg, exif(8, "big")))
    with pytest.warns(UserWarning, match="binarized at 128"):  # JPEG's ringing
        mask = store.read_mask(tmp_path / "j_mask.png")
    assert mask.shape == (640, 480) and np.mean(mask == store.orient(truth, 8)) > 0.995


def test_a_jpeg_masks_orientation_is_found_after_other_segments_and_tags(tmp_path, dev_root):
    # A camera's or an editor's JPEG: its Exif segment after JFIF's, Orientation after the Make tag;
    # one without Orientation, or without Exif, is not turned. The mask turns as its frame does.
    truth = cv2.imread(str(dev_root / "set3" / "1_mask.png"), 0)
    jpg = cv2.imencode(".jpg", truth, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    assert jpg[2:4] == b"\xff\xe0"  # JFIF's APP0 first, as OpenCV writes it
    after_jfif = 4 + int.from_bytes(jpg[4:6], "big")
    for name, data, orientation in (("camera", jpeg_with_exif(jpg, exif(6, make=b"Cam"), after_jfif), 6),
                                    ("untagged", jpeg_with_exif(jpg, exif(None, make=b"Cam"), after_jfif), 1),
                                    ("plain", jpg, 1)):
        path = tmp_path / name / "1_mask.png"
        path.parent.mkdir()
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # JPEG's ringing, binarized
            mask = store.read_mask(path, store.read_image(path).shape)  # the frame's turned size
        expected = store.orient(truth, orientation)
        assert mask.shape == expected.shape and np.mean(mask == expected) > 0.995, name


def test_an_image_claiming_billions_of_pixels_is_unreadable_not_a_traceback(tmp_path):
    # OpenCV raises (an assertion on CV_IO_MAX_IMAGE_PIXELS) where it returns None for other damage:
    # every command ended in a traceback. A PNG claiming 40000x30000 in 118 bytes, and a JPEG whose
    # size bytes were damaged.
    png = (store.PNG_SIGNATURE + png_chunk(b"IHDR", (40000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
                                           + b"\x08\0\0\0\0")
           + png_chunk(b"IDAT", zlib.compress(b"\0" * 40001)) + png_chunk(b"IEND", b""))
    ok, jpeg = cv2.imencode(".jpg", _img())
    jpeg = bytearray(jpeg.tobytes())
    at = jpeg.find(b"\xff\xc0")
    jpeg[at + 5:at + 9] = (60000).to_bytes(2, "big") * 2
    for name, data in (("0.png", png), ("1.png", bytes(jpeg))):
        (tmp_path / name).write_bytes(data)
        assert store.decode_file(tmp_path / name) is None
        with pytest.raises(StoreError, match=re.escape(f"unreadable or corrupt: {tmp_path / name}")):
            store.read_image(tmp_path / name, "frame")
    with pytest.raises(StoreError, match=re.escape(f"{tmp_path / '0.png'}")):
        store.read_mask(tmp_path / "0.png")


def test_temporary_files_are_new_files_never_a_users(tmp_path, monkeypatch):
    target = tmp_path / "0.png"
    # Files named as temporary files are named (this process's pid): a writer must neither truncate
    # nor remove them. The random part is made to repeat a name that is taken: the claim moves on.
    theirs = [tmp_path / f"0.png.{os.getpid()}.tmp", tmp_path / "0.png.tmp",
              tmp_path / f"0.png.{os.getpid()}.aaaaaa.tmp"]
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(store.secrets, "token_hex", lambda n: next(tokens))
    for p in theirs:
        p.write_bytes(b"theirs")
    assert store.claim_temporary(target) == tmp_path / f"0.png.{os.getpid()}.bbbbbb.tmp"
    assert (tmp_path / f"0.png.{os.getpid()}.bbbbbb.tmp").stat().st_size == 0
    (tmp_path / f"0.png.{os.getpid()}.bbbbbb.tmp").unlink()
    monkeypatch.undo()
    claimed = {store.claim_temporary(target) for _ in range(50)}
    assert len(claimed) == 50 and not claimed & set(theirs)
    assert all(p.parent == tmp_path and p.name.startswith(f"0.png.{os.getpid()}.") and p.stat().st_size == 0
               for p in claimed)
    for p in claimed:
        p.unlink()
    store.write_image(target, _img())
    store.write_together([(tmp_path / "1.png", b"a", False), (tmp_path / "1.json", b"{}", False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["0.png", "1.png", "1.json", *(p.name for p in theirs)])
    assert all(p.read_bytes() == b"theirs" for p in theirs)


def test_a_ctrl_c_as_a_file_or_a_set_is_made_leaves_no_temporary_file_and_no_empty_set(tmp_path, monkeypatch):
    # Ctrl-C between a temporary file's creation and its name reaching the code that removes it left
    # the file (bkg.png.PID.RANDOM.tmp); one just after a set folder's mkdir left a set without bkg.png,
    # which training and the labeler then refuse. The save finishes, then the interrupt is raised.
    import signal

    real_claim, real_create = store.claim_temporary, store.create_set

    def claim_then_ctrl_c(path, keep_suffix=False):
        tmp = real_claim(path, keep_suffix)
        os.kill(os.getpid(), signal.SIGINT)
        return tmp

    monkeypatch.setattr(store, "claim_temporary", claim_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        store.write_image(tmp_path / "a.png", _img())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png")), _img())
    with pytest.raises(KeyboardInterrupt):
        store.write_together([(tmp_path / "0_mask.png", b"mask", False), (tmp_path / "0.json", b"{}", False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json", "0_mask.png", "a.png"]
    monkeypatch.setattr(store, "claim_temporary", real_claim)

    def create_then_ctrl_c(root):
        made = real_create(root)
        os.kill(os.getpid(), signal.SIGINT)
        return made

    monkeypatch.setattr(store, "create_set", create_then_ctrl_c)
    root = tmp_path / "images"
    with pytest.raises(KeyboardInterrupt):
        store.save_background(root, _img())
    assert sorted(p.name for p in (root / "set1").iterdir()) == ["bkg.png"]


def test_signals_held_hand_the_signal_to_the_handler_that_was_there():
    # Training's first Ctrl-C asks to stop after the step: held over a checkpoint's write, it must
    # reach that handler (not raise KeyboardInterrupt); a block within a block holds until the outer end.
    import signal

    from humanseg.signals import StopSignals, signals_held

    stops = StopSignals()
    stops.install()
    try:
        with signals_held():
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
            assert stops.signum is None  # still held
        assert stops.signum == signal.SIGINT
    finally:
        stops.restore()
    with pytest.raises(KeyboardInterrupt):  # Python's own handler: KeyboardInterrupt, after the block
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done = True
    assert done
    # A block that raises hands the signal on too (a save that failed and is gone on from, a loader
    # worker's end raised mid-write): it was dropped with the block's error.
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            raise OSError(28, "No space left on device")
    stops = StopSignals()
    stops.install()
    try:
        with pytest.raises(RuntimeError):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")
        assert stops.signum == signal.SIGTERM  # training then stops at this step, as asked
    finally:
        stops.restore()


def test_signals_held_end_as_the_signal_would_have_where_no_handler_was_set_and_not_where_it_was_ignored():
    # A SIGTERM under the default action, held over a write, must still end the work after it (as
    # Terminated, exit 143, not Ctrl-C's 130); a Ctrl-C that was ignored (a job started in the
    # background) must stay ignored, not become a KeyboardInterrupt after the block.
    from humanseg.signals import Terminated, signals_held

    before = {sig: signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.SIG_IGN)
              for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        reached = False
        with pytest.raises(KeyboardInterrupt) as err:  # (Terminated is one, so the same clean-up runs)
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                reached = True
        assert reached and isinstance(err.value, Terminated) and err.value.signum == signal.SIGTERM
        try:
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pytest.fail("an ignored Ctrl-C was raised after the block")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_hangup_points_output_that_leads_nowhere_at_dev_null():
    # SIGHUP from a closed terminal: the lines written after the stop failed with "Input/output
    # error", and the run exited 1 rather than 129.
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    os.close(master)  # the terminal has gone
    code = ("import signal, sys; from humanseg.signals import quiet_hung_up_terminal; "
            "quiet_hung_up_terminal(signal.SIGHUP); print('after the hangup'); sys.stdout.flush()")
    r = subprocess.run([sys.executable, "-c", code], stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    # The hangup itself, as every command and training take it: both stdout and stderr quieted, so the
    # lines after it (the one-line error, training's note) are lost, not a failed write (exit 1).
    after = "print('after the hangup', flush=True); print('an error', file=sys.stderr, flush=True)"
    for code in ("from humanseg.signals import sigterm_as_interrupt\n"
                 "with sigterm_as_interrupt():\n"
                 "    try:\n        os.kill(os.getpid(), signal.SIGHUP); time.sleep(5)\n"
                 "    except KeyboardInterrupt:\n        pass\n",
                 "from humanseg.signals import StopSignals\nStopSignals().install()\n"
                 "os.kill(os.getpid(), signal.SIGHUP)\n"):
        r = subprocess.run([sys.executable, "-c", "import os, signal, sys, time\n" + code + after], stdout=slave,
                           stderr=slave, cwd=ROOT, timeout=60, preexec_fn=as_from_a_terminal)
        assert r.returncode == 0, code
    os.close(slave)


def test_a_hangup_is_left_alone_where_it_was_ignored_as_under_nohup():
    from humanseg.signals import StopSignals, sigterm_as_interrupt

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        stops = StopSignals()
        stops.install()
        try:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stops._handle
        finally:
            stops.restore()
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_device_or_a_pipe_is_never_replaced_by_a_file(tmp_path):
    # --force (or release's DST, without it) replaced /dev/null with a JSON report when run as root,
    # and a named pipe with a regular file.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(StoreError, match=re.escape(f"--json {pipe} is not a regular file (a device or a pipe); "
                                                   f"name a file")):
        store.refuse_unwritable(pipe, "--json")
    with pytest.raises(StoreError, match=re.escape(f"{pipe} is not a regular file")):
        store.write_bytes_atomic(pipe, b"{}", overwrite=True)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and sorted(os.listdir(tmp_path)) == ["pipe"]
    assert store.decode_file(pipe) is None  # read as an image, it waited for a writer for ever
    store.refuse_unwritable(tmp_path / "new.json", "--json")  # files, folders and links are fine
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    store.refuse_unwritable(tmp_path / "link", "--json")


def test_out_of_memory_is_one_line_not_corrupt_nor_a_traceback(tmp_path, monkeypatch):
    # A good 6400x4800 frame on a machine short of memory: OpenCV's decoder raised "Insufficient
    # memory", taken for a corrupt file (exit 2); the same error elsewhere (a resize) was a traceback.
    path = tmp_path / "big.png"
    path.write_bytes(store.encode_png(np.zeros((8, 8, 3), np.uint8)))

    def short_of_memory(data, flags):
        raise cv2.error("OpenCV(4.11.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
                        "92160000 bytes in function 'OutOfMemoryError'\n")

    monkeypatch.setattr(store.cv2, "imdecode", short_of_memory)
    with pytest.raises(store.ImageTooLarge, match=rf"^frame too large to decode in this machine's memory \(or its "
                                                  rf"header is damaged\): {re.escape(str(path))}$") as err:
        store.read_image(path, "frame")
    assert err.value.exit_code == 1
    with pytest.raises(store.ImageTooLarge, match=r"^mask too large"):
        store.read_mask(path)

    @click.command()
    @reports_errors
    def command():
        cv2.resize(np.zeros((10, 10), np.uint8), (1000000, 1000000))  # a terabyte

    result = CliRunner().invoke(command, [])
    assert (result.exit_code, result.output) == (1, "Error: out of memory (an image too large for this "
                                                    "machine's memory, or too many at once?)\n")


def _labeled_set(root, value=100):
    """A new set under root with one frame and its mask; returns the set's folder."""
    _, bkg = store.save_background(root, _img(value=value))
    n = store.list_sets(root)[-1]
    store.save_frame(root, n, _img(value=value))
    store.write_image(bkg.parent / "0_mask.png", np.zeros((48, 64), np.uint8))
    return bkg.parent


def test_a_label_save_that_cannot_finish_takes_back_what_it_wrote(tmp_path):
    # A mask and its json go together: when the json cannot be put in place (one appeared meanwhile),
    # the mask written just before is removed if it was new and restored if it replaced one.
    mask, label = tmp_path / "0_mask.png", tmp_path / "0.json"
    label.write_text("{}")
    with pytest.raises(StoreError, match=r"refusing to overwrite existing file: .*0\.json$"):
        store.write_together([(mask, b"new mask", False), (label, b"new json", False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json"]
    assert label.read_text() == "{}"
    mask.write_bytes(b"old mask")
    with pytest.raises(StoreError, match="refusing to overwrite"):
        store.write_together([(mask, b"new mask", True), (label, b"new json", False)])
    assert mask.read_bytes() == b"old mask" and label.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json", "0_mask.png"]  # nothing kept aside
    # Where hard links cannot be made (FAT32, some shares), the replaced file comes back from its bytes.
    real_link = os.link

    def no_links(src, dst, *a, **k):
        if str(dst) == str(mask) or str(src) == str(mask):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real_link(src, dst, *a, **k)

    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(os, "link", no_links)
        with pytest.raises(StoreError, match="refusing to overwrite"):
            store.write_together([(mask, b"new mask", True), (label, b"new json", False)])
    assert mask.read_bytes() == b"old mask" and label.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json", "0_mask.png"]
    # and when it all fits, both are written and nothing else is left
    assert store.write_together([(mask, b"new mask", True), (label, b"new json", True)]) == [mask, label]
    assert mask.read_bytes() == b"new mask" and label.read_text() == "new json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json", "0_mask.png"]


def test_a_full_disk_stops_a_label_save_before_anything_is_replaced(tmp_path, monkeypatch):
    mask, label = tmp_path / "0_mask.png", tmp_path / "0.json"
    mask.write_bytes(b"old mask")
    placed = []
    real_replace, real_link = os.replace, os.link
    monkeypatch.setattr(os, "replace", lambda s, d, *a, **k: (placed.append(d), real_replace(s, d, *a, **k)))
    monkeypatch.setattr(os, "link", lambda s, d, *a, **k: (placed.append(d), real_link(s, d, *a, **k)))
    syncs = []

    def full_on_second(fd):
        syncs.append(fd)
        if len(syncs) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_on_second)
    with pytest.raises(OSError) as exc:
        store.write_together([(mask, b"new mask", True), (label, b"new json", False)])
    assert exc.value.filename == str(label)
    assert placed == []  # the mask was never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0_mask.png"] and mask.read_bytes() == b"old mask"


def test_a_run_replaces_only_the_files_it_wrote_itself(tmp_path):
    path = tmp_path / "bkg.png"
    own = store.OwnFiles()
    own.write_image(path, _img(value=10))
    own.write_image(path, _img(value=20))  # its own file, written again (a re-captured background)
    assert np.array_equal(store.read_image(path), _img(value=20))
    # Another program writes the same file in place, same size: no longer the run's own.
    data = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.write(data)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(StoreError, match=r"refusing to overwrite existing file: .*bkg\.png$"):
        own.write_image(path, _img(value=30))
    assert np.array_equal(store.read_image(path), _img(value=20))
    (tmp_path / "0.png").write_bytes(store.encode_png(_img(value=40)))  # there before the run
    with pytest.raises(StoreError, match="refusing to overwrite"):
        own.write_image(tmp_path / "0.png", _img(value=50))
    assert np.array_equal(store.read_image(tmp_path / "0.png"), _img(value=40))
    forced = store.OwnFiles(overwrite=True)
    forced.write_image(tmp_path / "0.png", _img(value=50))
    assert np.array_equal(store.read_image(tmp_path / "0.png"), _img(value=50))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "bkg.png"]


def test_a_run_remembers_its_own_files_in_little_memory(tmp_path, monkeypatch):
    # live --save-masks writes a mask a frame and remembers each (to replace only its own): a Path and
    # its identity took about 0.8 kB an entry in the process, 80 MB an hour at 30 fps. Measured as the
    # bytes of every object the OwnFiles holds (the process's own allocations meanwhile, which a
    # model loaded by an earlier test adds to, are not its).
    import gc
    import sys
    import types

    def held(root) -> int:
        seen, stack, total = set(), [root], 0
        while stack:
            obj = stack.pop()
            if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
                continue
            seen.add(id(obj))
            total += sys.getsizeof(obj)
            stack.extend(gc.get_referents(obj))
        return total

    monkeypatch.setattr(store, "write_image", lambda path, image, overwrite=False: path)  # no disk
    monkeypatch.setattr(store, "file_identity", lambda path: (2049, hash(os.fspath(path)) & 0xFFFFFF, 5123,
                                                              1_733_000_000_123_456_789))
    own = store.OwnFiles()
    image = _img(value=10)
    own.write_image(tmp_path / "masks" / "0_mask.png", image)
    before = held(own)
    for k in range(1, 20001):
        own.write_image(tmp_path / "masks" / f"{k}_mask.png", image)
    per_entry = (held(own) - before) / 20000
    assert 50 < per_entry < 250, per_entry  # (about 100 now, 150 as the process allocates them; over 500 before)


def test_sets_and_frames_in_places_not_there_yet(tmp_path):
    root = tmp_path / "a" / "b" / "images"
    assert store.next_frame_number(root / "set1") == 0
    assert store.save_background(root, _img())[0] == 1  # the images folder is made, with its parents
    with pytest.raises(StoreError, match=r"^set folder not found: .*set2$"):
        store.save_frame(root, 2, _img())
    assert sorted(p.name for p in root.iterdir()) == ["set1"]
    with pytest.raises(StoreError, match=r"^images folder not found: .*nothing$"):
        store.scan_root(tmp_path / "nothing")
    with pytest.raises(StoreError, match=r"^mask missing: .*0_mask\.png$"):
        store.read_mask(root / "set1" / "0_mask.png")


def test_labeled_sets_reads_only_the_sets_asked_and_only_labeled_ones(tmp_path):
    root = tmp_path / "images"
    _labeled_set(root, value=10)
    _labeled_set(root, value=20)
    store.save_background(root, _img(value=30))
    (root / "set3" / "bkg.png").write_bytes(b"damaged")  # a set with nothing labeled is not read
    samples = list(store.read_labeled(store.labeled_sets(root, sets=[2])))
    assert [(s.set_number, s.index, s.path) for s in samples] == [(2, 0, root / "set2" / "0.png")]
    assert np.array_equal(samples[0].frame, _img(value=20))
    assert [s.set_number for s in list(store.read_labeled(store.labeled_sets(root)))] == [1, 2]


def test_a_folder_named_as_a_mask_is_no_label(tmp_path):
    root = tmp_path / "images"
    folder = _labeled_set(root)
    store.save_frame(root, 1, _img())
    (folder / "1_mask.png").mkdir()
    with pytest.warns(UserWarning, match=r"1_mask\.png is not a file; that label is left out$"):
        info = store.scan_set(root, 1)
    assert info.labeled == [0] and info.unlabeled == [1]


def test_capture_folders_and_new_set_folders_among_them_are_refused(tmp_path):
    frames_only = tmp_path / "frames"
    frames_only.mkdir()
    (frames_only / "0.png").write_bytes(store.encode_png(_img()))
    with pytest.raises(StoreError, match="is a capture set folder"):
        store.refuse_capture_folder(frames_only, "--out")
    bkg_only = tmp_path / "bkg"
    bkg_only.mkdir()
    (bkg_only / "bkg.png").write_bytes(store.encode_png(_img()))
    with pytest.raises(StoreError, match="is a capture set folder"):
        store.refuse_capture_folder(bkg_only, "--out")
    store.refuse_capture_folder(tmp_path / "elsewhere", "--out")
    root = tmp_path / "images"
    _labeled_set(root)
    (root / "set3").mkdir()  # an empty set folder beside a real one
    with pytest.raises(StoreError, match=r"set9 would sit among the capture sets"):
        store.refuse_new_set_folder(root / "set9" / "out.png", "--out")
    store.refuse_new_set_folder(root / "set1" / "report" / "out.json", "--out")  # inside a real set
    store.refuse_new_set_folder(tmp_path / "set9" / "out.png", "--out")  # no capture sets beside it


def test_the_first_set_with_names_near_the_layouts_is_named(tmp_path):
    root = tmp_path / "images"
    _labeled_set(root)
    _labeled_set(root)
    (root / "set1" / "07.png").write_bytes(b"")
    assert "set1/07.png passed over" in store.why_no_labels(root)
    (root / "set01").mkdir()  # a set folder's own name off the layout is said first
    assert store.why_no_labels(root) == " (set01 passed over: the layout's names are set1, set2, ...)"


def test_names_near_the_layouts_in_a_later_set_are_named(tmp_path):
    root = tmp_path / "images"
    for _ in range(3):
        _labeled_set(root)
    (root / "set2" / "1.PNG").write_bytes(b"")
    assert store.why_no_labels(root) == " (set2/1.PNG passed over: the layout's names are 0.png, 1.png, ...)"


def test_a_cut_off_background_save_is_told_apart_by_its_writer(tmp_path):
    root = tmp_path / "images"
    store.save_background(root, _img())
    (root / "set2").mkdir()  # pid 0 names a process group, never a writer: the save was cut off
    (root / "set2" / "bkg.png.0.a1b2c3.tmp").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"set2 holds no background"):
        assert store.list_sets(root) == [1]
    (root / "set3").mkdir()  # one writer gone, one at work: still being written, left out quietly
    (root / "set3" / f"bkg.png.{10**20}.0a0b0c.tmp").write_bytes(b"")
    (root / "set3" / f"bkg.png.{os.getpid()}.d4e5f6.tmp").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.list_sets(root) == [1]
        (root / "set4").mkdir()  # a writer that is another user's process (not ours to signal): at work
        (root / "set4" / "bkg.png.4242.0f0f0f.tmp").write_bytes(b"")

        def another_users(pid, sig):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

        with pytest.MonkeyPatch.context() as mp_:
            mp_.setattr(os, "kill", another_users)
            assert store.list_sets(root) == [1]


def test_16_bit_masks_at_the_edges_of_their_ranges(tmp_path):
    truth = np.zeros((48, 64), np.uint8)
    truth[10:30, 20:40] = 255
    cases = {  # values -> what the person is read from
        "8bit": np.where(truth > 0, 255, 0) + (truth == 0) * 100 * (np.arange(64) % 2 == 0),  # 0/100/255
        "12bit": np.where(truth > 0, 4095, 0) + (truth == 0) * 2000 * (np.arange(64) % 2 == 0),  # 0/2000/4095
    }
    for name, values in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        cv2.imwrite(str(folder / "0_mask.png"), values.astype(np.uint16))
        with pytest.warns(UserWarning, match="binarized at 128"):
            assert np.array_equal(store.read_mask(folder / "0_mask.png"), truth), name
    cv2.imwrite(str(tmp_path / "0_mask.png"), (truth > 0).astype(np.uint16) * 1000)  # a class number
    cv2.imwrite(str(tmp_path / "1_mask.png"), np.full(truth.shape, 1000, np.uint16))  # that class alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(store.read_mask(tmp_path / "0_mask.png"), truth)
        assert (store.read_mask(tmp_path / "1_mask.png") == 255).all()  # was scaled, and warned of as 0/62
    image = np.full((8, 8, 3), 4095, np.uint16)  # a 12-bit camera's white
    cv2.imwrite(str(tmp_path / "white.png"), image)
    assert store.read_image(tmp_path / "white.png").min() == 255


def test_a_mask_value_of_128_is_person(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 128
    mask[4:, :4] = 100
    cv2.imwrite(str(tmp_path / "0_mask.png"), mask)
    with pytest.warns(UserWarning, match="binarized at 128"):
        got = store.read_mask(tmp_path / "0_mask.png")
    assert np.array_equal(got, np.where(mask == 128, 255, 0).astype(np.uint8))


def test_a_colour_mask_with_alpha_is_read_by_its_colour_where_it_is_opaque(tmp_path):
    mask = np.zeros((8, 8, 4), np.uint8)
    mask[2:6, 2:6, :3] = 255  # a white person on black
    mask[:, :4, 3] = 255  # alpha that varies otherwise (half the image opaque)
    cv2.imwrite(str(tmp_path / "0_mask.png"), mask)
    got = store.read_mask(tmp_path / "0_mask.png")
    # The colour decides where the mask is there; its transparent half is no person (until the
    # fifty-ninth day the colour decided there too).
    assert np.array_equal(got, np.where(mask[..., 3] > 0, mask[..., 0], 0))


def test_only_colour_images_pass_check_bgr():
    store.check_bgr(_img(), "frame")
    for bad, got in ((_img().astype(np.float32), "float32 48x64x3"), (np.zeros((0, 4, 3), np.uint8), "uint8 0x4x3")):
        with pytest.raises(HumansegError, match=rf"^frame must be a colour image, HxWx3 BGR uint8 \(got {got}\)$"):
            store.check_bgr(bad, "frame")


def refuse_os(monkeypatch, name, when, err=errno.EACCES):
    """os.<name> fails with `err` (a share's permissions, a failing disk) for the calls `when(*args)`
    picks; the others go through."""
    real = getattr(os, name)

    def refused(*args, **kwargs):
        if when(*args):
            raise OSError(err, os.strerror(err))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, refused)


def test_a_failed_write_without_hard_links_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "0.png"

    def no_links(*a, **k):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def broken(*a, **k):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError) as exc:
        store.write_image(target, _img())
    assert exc.value.errno == errno.EIO and exc.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    # Another program's file put there meanwhile (after the empty claim) is never removed.
    def theirs_then_broken(src, dst, *a, **k):
        os.unlink(dst)
        with open(dst, "wb") as fh:
            fh.write(b"their frame")
        broken()

    monkeypatch.setattr(os, "replace", theirs_then_broken)
    with pytest.raises(OSError):
        store.write_image(target, _img())
    assert [p.name for p in tmp_path.iterdir()] == ["0.png"] and target.read_bytes() == b"their frame"
    target.unlink()
    # The claim itself refused (a share's permissions): named by the file too.
    refuse_os(monkeypatch, "open", lambda path, *a: str(path) == str(target))
    with pytest.raises(PermissionError) as exc:
        store.write_image(target, _img())
    assert exc.value.filename == str(target) and list(tmp_path.iterdir()) == []


def test_write_in_place_leaves_no_temporary_name(tmp_path):
    target = tmp_path / "out.png"
    tmp = store.claim_temporary(target)
    tmp.write_bytes(b"x")
    store.write_in_place(tmp, target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"] and target.read_bytes() == b"x"
    # A second one is refused over it and kept (a recording whose name was taken meanwhile); asked
    # to (--force), it replaces the file, and its temporary name goes.
    tmp = store.claim_temporary(target)
    tmp.write_bytes(b"y")
    with pytest.raises(AlreadyExists):
        store.write_in_place(tmp, target)
    assert target.read_bytes() == b"x" and tmp.read_bytes() == b"y"
    store.write_in_place(tmp, target, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"] and target.read_bytes() == b"y"


def test_a_temporary_file_that_cannot_be_removed_is_said(tmp_path, monkeypatch):
    tmp = tmp_path / "x.tmp"
    tmp.write_bytes(b"")

    def refused(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "unlink", refused)
    with pytest.warns(UserWarning, match=r"could not remove the temporary file .*x\.tmp$"):
        store.remove_temporary(tmp)


def test_a_name_that_is_not_utf8_is_shown_with_escapes():
    assert store.shown_path(os.fsdecode(b"bad\xff.png")) == "bad\\xff.png"


def test_a_replacing_save_that_fails_leaves_nothing_aside_and_says_what_it_could_not_take_back(tmp_path, monkeypatch):
    mask, label = tmp_path / "0_mask.png", tmp_path / "0.json"
    mask.write_bytes(b"old mask")
    real_replace = os.replace
    refuse_os(monkeypatch, "replace", lambda src, dst, *a: str(dst) == str(mask), errno.EIO)
    with pytest.raises(OSError) as exc:
        store.write_together([(mask, b"new mask", True), (label, b"new json", True)])
    assert exc.value.filename == str(mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0_mask.png"]  # its hard link kept aside is gone
    assert mask.read_bytes() == b"old mask"
    monkeypatch.setattr(os, "replace", real_replace)
    mask.unlink()
    label.write_text("{}")
    refuse_os(monkeypatch, "unlink", lambda path, *a: str(path) == str(mask))
    with pytest.warns(UserWarning, match=r"could not take back .*0_mask\.png after a failed save"):
        with pytest.raises(StoreError, match="refusing to overwrite"):
            store.write_together([(mask, b"new mask", False), (label, b"new json", False)])


def test_a_temporary_file_that_cannot_be_made_is_named_by_its_file(tmp_path, monkeypatch):
    refuse_os(monkeypatch, "open", lambda path, *a: str(path).endswith(".tmp"))
    with pytest.raises(PermissionError) as exc:
        store.write_image(tmp_path / "0.png", _img())
    assert exc.value.filename == str(tmp_path / "0.png")


def test_written_files_are_readable_as_the_umask_says(tmp_path):
    old = os.umask(0o022)
    try:
        path = store.write_image(tmp_path / "0.png", _img())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_link_to_a_device_is_replaced_not_written_through(tmp_path):
    link = tmp_path / "report.json"
    link.symlink_to(os.devnull)
    store.write_json(link, {"a": 1}, overwrite=True)
    assert not link.is_symlink() and link.read_text() == '{\n  "a": 1\n}\n'


def test_a_background_named_with_spaces_is_shown_quoted(tmp_path):
    root = tmp_path / "images"
    store.save_background(root, _img())
    (root / "set1" / "bkg.png").rename(root / "set1" / " bkg.png")
    with pytest.raises(StoreError, match=r"^background missing: .*set1/bkg\.png \(' bkg\.png' passed over: the "
                                         r"background is bkg\.png\)$"):
        store.scan_set(root, 1)


def test_a_mask_of_another_size_is_named_with_both_sizes(tmp_path):
    cv2.imwrite(str(tmp_path / "0_mask.png"), np.zeros((4, 8), np.uint8))
    with pytest.raises(StoreError, match=r"^mask size 8x4 differs from its frame 6x4: .*0_mask\.png$"):
        store.read_mask(tmp_path / "0_mask.png", (4, 6))


def test_a_video_name_that_is_not_utf8_is_refused_by_name(tmp_path):
    store.refuse_non_utf8_video_name(tmp_path / "clip.mp4", "--video")
    with pytest.raises(StoreError, match=r"^--video .*bad\\xff\.mp4: OpenCV cannot open a video whose path is not "
                                         r"valid UTF-8; rename it \(or its folder\)$"):
        store.refuse_non_utf8_video_name(os.fsdecode(b"bad\xff.mp4"), "--video")


def test_a_capture_killed_while_encoding_a_new_background_leaves_no_set_that_stops_every_tool(tmp_path, dev_root):
    # The capture tool's Bkg (capture.save_capture -> store.save_background) made setN/ with its
    # exclusive mkdir, then encoded bkg.png (about 30 ms for 640x480, most of the save), and only then
    # claimed bkg.png.PID.RANDOM.tmp. A SIGKILL (an OOM kill, a `kill -9`; or a power loss) in that
    # encoding left setN/ empty: not the "save cut off" set that every tool leaves out (that one holds
    # the temporary file), but a set without bkg.png that stopped training and evaluate with
    # "background missing: images/setN/bkg.png" (of 30 random SIGKILLs of a loop of background saves,
    # 21 left an empty set folder). The PNG is now encoded before the set is made. The kill is made to
    # land in the encoding by replacing the encoder with one that kills the process.
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set1", root / "set1")  # a whole labeled set
    code = (
        "import os, signal, sys, cv2\n"
        "from humanseg import store\n"
        "from humanseg.capture import CaptureContext, save_capture\n"
        "store.encode_png = lambda image: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"save_capture('background', cv2.imread({str(dev_root / 'set2' / 'bkg.png')!r}), "
        f"CaptureContext(images_root={str(root)!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    # What training (read_labeled) and evaluate then read: the sets through list_sets / scan_set.
    with warnings.catch_warnings(record=True):  # a set left out may be said in a warning
        warnings.simplefilter("always")
        sets = [info.number for info in store.scan_root(root)]  # raised "background missing: .../set2/bkg.png"
        assert sets == [1]
        assert [s.set_number for s in list(store.read_labeled(store.labeled_sets(root)))] == [1] * 5  # training's read of the sets


def test_names_ending_in_a_newline_or_with_other_digits_are_not_the_layouts(tmp_path):
    # The layout's patterns ended in $, which matches before a final newline: "1.png\n" was frame 1 a
    # second time (trained on twice, walked twice by the labeler), "set1\n" set 1 again; and \d took
    # a full-width digit: "1２.png" was frame 12 (then "frame missing: set1/12.png"), "set1２" set 12.
    root = tmp_path / "images"
    folder = _labeled_set(root)
    shutil.copy(folder / "0.png", folder / "1.png")
    shutil.copy(folder / "0_mask.png", folder / "1_mask.png")
    for name in ("1.png\n", "1\uff12.png", "1\uff12_mask.png", "2.png\n", "2_mask.png\n"):
        shutil.copy(folder / "0.png", folder / name)
    shutil.copytree(folder, root / "set1\n")
    shutil.copytree(folder, root / "set1\uff12")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the near names are said as passed over)
        assert store.list_sets(root) == [1]
        assert store.list_frames(folder) == [0, 1]
        assert store.scan_set(root, 1).labeled == [0, 1]
        assert [(s.set_number, s.index) for s in list(store.read_labeled(store.labeled_sets(root)))] == [(1, 0), (1, 1)]
        assert store.next_set_number(root) == 2
        assert store.next_frame_number(folder) == 2
    with pytest.raises(StoreError, match=r"^set folder not found: .*/set12 \(sets here: 1\)$"):
        store.scan_set(root, 12)


def test_labels_and_set_folders_that_are_broken_links_are_named_as_such(tmp_path):
    # A mask that links to nothing or to itself was "is not a file" (the README names them as links),
    # and a loop of set folders "a link to nothing".
    root = tmp_path / "images"
    folder = _labeled_set(root)
    shutil.copy(folder / "0.png", folder / "1.png")
    shutil.copy(folder / "0.png", folder / "2.png")
    (folder / "1_mask.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "2_mask.png").symlink_to("2_mask.png")
    with pytest.warns(UserWarning) as said:
        assert store.scan_set(root, 1).labeled == [0]
    assert [str(w.message) for w in said] == [
        f"{folder / '1_mask.png'} is a link to nothing; that label is left out (and 1 more there)"]
    folder2 = _labeled_set(tmp_path / "other")
    (folder2 / "0_mask.png").unlink()
    (folder2 / "0_mask.png").symlink_to("0_mask.png")
    with pytest.warns(UserWarning) as said:
        store.scan_set(tmp_path / "other", 1)
    assert [str(w.message) for w in said] == [f"{folder2 / '0_mask.png'} is a symlink loop; that label is left out"]
    (root / "set2").symlink_to("set3")
    (root / "set3").symlink_to("set2")
    with pytest.warns(UserWarning) as said:
        assert store.list_sets(root) == [1]
    assert [str(w.message) for w in said] == [f"{root / 'set2'} is a symlink loop (set3); that set is left out",
                                              f"{root / 'set3'} is a symlink loop (set2); that set is left out"]
    with pytest.raises(StoreError, match=r"^set folder is a symlink loop: .*/set2 -> set3$"):
        store.scan_set(root, 2)


def test_a_set_asked_for_in_an_images_folder_not_there_names_the_images_folder(tmp_path):
    # The labeler and the capture tool's --set said "set folder not found: gone/set1 (no sets here)",
    # training and evaluate "images folder not found: gone".
    with pytest.raises(StoreError, match=r"^images folder not found: .*/gone$"):
        store.scan_set(tmp_path / "gone", 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"^images folder not found: .*/file$"):
        store.scan_set(tmp_path / "file", 1)


def test_a_set_not_found_among_many_names_a_few_of_them(tmp_path):
    # A thousand sets made "set folder not found" a line of 5,000 characters.
    root = tmp_path / "images"
    for n in range(1, 31):
        (root / f"set{n}").mkdir(parents=True)
        (root / f"set{n}" / "bkg.png").write_bytes(b"")
    with pytest.raises(StoreError) as exc:
        store.scan_set(root, 99)
    assert str(exc.value) == (f"set folder not found: {root / 'set99'} (sets here: 1, 2, 3, 4, 5, 6, ..., 25, 26, "
                              f"27, 28, 29, 30: 30 sets)")
    for n in range(13, 31):
        shutil.rmtree(root / f"set{n}")
    with pytest.raises(StoreError, match=r"\(sets here: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12\)$"):
        store.scan_set(root, 99)
