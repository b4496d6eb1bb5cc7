"""Frame sources: a camera that drops frames, a camera that stops, a video file that ends."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from humanseg import sources, store
from shapes import person_centre, portrait
from humanseg.errors import HumansegError
from humanseg.sources import VideoSource, looks_mirrored


class FakeCapture:
    """cv2.VideoCapture stand-in: plays a script of reads (True: a frame, False: a failed read)."""

    def __init__(self, script, then=False):
        self.script, self.then, self.reads = list(script), then, 0
        self.frame_count = len(self.script)  # what a file's container says

    def isOpened(self):
        return True

    def get(self, prop):
        return self.frame_count if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def read(self):
        ok = self.script.pop(0) if self.script else self.then
        self.reads += 1
        return ok, (np.full((4, 4, 3), self.reads, np.uint8) if ok else None)

    def release(self):
        pass


def opened(monkeypatch, spec, cap):
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda s: cap)
    return VideoSource(spec)


def test_a_camera_that_drops_a_few_frames_goes_on(monkeypatch):
    cap = FakeCapture([True, False, False, True], then=True)
    cam = opened(monkeypatch, 0, cap)
    first, second = cam.read(), cam.read()
    assert first[0, 0, 0] == 1 and second[0, 0, 0] == 4  # the two failed reads were asked again


def test_a_camera_that_stops_is_an_error_not_an_end(monkeypatch):
    cap = FakeCapture([True], then=False)
    cam = opened(monkeypatch, 0, cap)
    monkeypatch.setattr(VideoSource, "grace_seconds", 0.2)
    assert cam.read() is not None
    with pytest.raises(HumansegError, match=r"camera 0 gave no frame for 0.2 s \(unplugged") as exc:
        cam.read()
    assert exc.value.exit_code == 1 and cap.reads > 2


def test_a_video_file_simply_ends(monkeypatch, tmp_path):
    cap = FakeCapture([True], then=False)
    clip = opened(monkeypatch, str(tmp_path / "clip.mp4"), cap)
    assert clip.read() is not None and clip.read() is None and cap.reads == 2
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda s: FakeCapture([True]))
    assert not VideoSource(0, loop=True).loop  # a camera has no start to go back to


def test_a_glob_takes_frames_only_as_a_folder_does(copy_set):
    # images/set3/*.png also matches bkg.png and the masks: they are not frames to segment.
    folder = copy_set(3) / "set3"
    (folder / "0_pred.png").write_bytes((folder / "0_mask.png").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    (folder / "._0.png").write_bytes(b"macOS resource fork")  # hidden: passed over, as * does
    frames = [str(folder / f"{k}.png") for k in range(4)]
    for spec in (str(folder), str(folder / "*.png"), str(folder / "*")):
        assert sources.open_source(spec).paths == frames, spec
    with pytest.raises(HumansegError, match=r"no images found in source: .*_mask.png \(4 other files: "):
        sources.open_source(str(folder / "*_mask.png"))
    assert sources.open_source(str(folder / "bkg.png")).paths == [str(folder / "bkg.png")]  # named: taken


def test_a_folder_of_tiff_frames_is_a_source(tmp_path, dev_root):
    # "no images found in source" for a folder of .tif frames, though one .tif named alone was read.
    frame = cv2.imread(str(dev_root / "set3" / "1.png"))
    for k, ext in enumerate((".tif", ".tiff")):
        cv2.imwrite(str(tmp_path / f"{k}{ext}"), frame)
    (tmp_path / "._0.tif").write_bytes(b"macOS resource fork")  # hidden: passed over here too
    source = sources.open_source(str(tmp_path))
    assert source.paths == [str(tmp_path / "0.tif"), str(tmp_path / "1.tiff")]
    assert np.array_equal(source.read(), frame)


def damaged_in_the_middle(clip, fourcc: str):
    """A 150-frame clip of a ball moving right (2 px a frame), a fifth of the file zeroed a third of
    the way in."""
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*fourcc), 30.0, (320, 240))
    rng = np.random.default_rng(0)
    for k in range(150):
        frame = np.full((240, 320, 3), 80, np.uint8)
        cv2.circle(frame, (20 + 2 * k, 120), 30, (0, 0, 255), -1)
        writer.write(np.clip(frame + rng.integers(0, 20, frame.shape), 0, 255).astype(np.uint8))
    writer.release()
    data = bytearray(clip.read_bytes())
    n = len(data)
    data[n // 3:n // 3 + n // 5] = bytes(n // 5)
    clip.write_bytes(bytes(data))
    return clip


def test_a_video_file_damaged_in_the_middle_goes_on_after_the_damage(tmp_path, monkeypatch):
    # Frames that stop decoding were taken for the end of the file: the 70 good frames after a damaged
    # stretch were dropped without a word.
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    clip = damaged_in_the_middle(tmp_path / "clip.mp4", "mp4v")
    source = sources.open_source(str(clip))
    with pytest.warns(UserWarning, match=rf"^video file {clip}: frames (\d+)-(\d+) \(counted from 1\) could "
                                         rf"not be decoded \(damaged\?\); skipped$") as caught:
        frames = list(source)
    first, last = map(int, re.search(r"frames (\d+)-(\d+)", str(caught[0].message)).groups())
    assert 1 < first <= last < 150 and len(frames) == 150 - (last - first + 1)


def test_a_video_file_cut_short_says_so_at_its_end(tmp_path, monkeypatch):
    # It ended as if it were over: a recording cut in half gave half the frames, exit 0, not a word.
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for k in range(60):
        frame = np.full((240, 320, 3), 80, np.uint8)
        cv2.circle(frame, (20 + 4 * k, 120), 30, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    whole = clip.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole: no warning
        assert len(list(sources.open_source(str(clip)))) == 60
    clip.write_bytes(whole[:len(whole) // 2])
    source = sources.open_source(str(clip))
    said = rf"^video file {clip}: (\d+) of its 60 frames could not be decoded \(cut short, or damaged\?\); it ends"
    with pytest.warns(UserWarning, match=said + r" after (\d+) frames$") as caught:
        frames = list(source)
    missing, read = map(int, re.search(r"(\d+) of its 60 .* after (\d+) frames$", str(caught[0].message)).groups())
    assert 10 < len(frames) == read == 60 - missing < 50


def test_an_avi_damaged_in_the_middle_says_how_many_frames_it_lost(tmp_path, monkeypatch):
    # FFmpeg's AVI reader passes over a damaged stretch without a failed read: the frames lost there
    # were reported as "frames 121-150 ... it ends after frame 120", the wrong frames.
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    clip = damaged_in_the_middle(tmp_path / "clip.avi", "MJPG")
    with pytest.warns(UserWarning, match=r"(\d+) of its 150 frames could not be decoded \(cut short, or "
                                         r"damaged\?\); it ends after (\d+) frames$") as caught:
        frames = list(sources.open_source(str(clip)))
    missing, read = map(int, re.search(r"(\d+) of its 150 .* after (\d+) frames$", str(caught[0].message)).groups())
    assert 0 < missing < 150 and len(frames) == read == 150 - missing
    # The frames after the damaged stretch were read (the ball is near the right edge in the last one).
    red = np.nonzero(((frames[-1][..., 2] > 150) & (frames[-1][..., 1] < 120)).any(axis=0))[0]
    assert red.mean() > 20 + 2 * 140


def test_a_video_header_claiming_billions_of_frames_ends_with_its_frames(tmp_path, monkeypatch):
    # Every frame past the real ones was tried: 2**31 failed reads, an hour spinning at the file's end.
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for k in range(5):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    data = bytearray(clip.read_bytes())
    for tag, at in ((b"avih", 24), (b"strh", 40)):  # total frames (main header), length (stream header)
        i = data.find(tag)
        data[i + at:i + at + 4] = (2**31 - 1).to_bytes(4, "little")
    clip.write_bytes(bytes(data))
    source = sources.open_source(str(clip))
    assert source.cap.get(cv2.CAP_PROP_FRAME_COUNT) == 2**31 - 1

    class Counted:  # the capture, counting its reads
        def __init__(self, cap):
            self.cap, self.reads = cap, 0

        def read(self):
            self.reads += 1
            return self.cap.read()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    source.cap = counted = Counted(source.cap)
    monkeypatch.setattr(sources, "MAX_UNDECODED", 1000)  # (100000 by default: a fifth of a second)
    with pytest.warns(UserWarning, match=rf"{2**31 - 6} of its {2**31 - 1} frames could not be decoded"):
        frames = list(source)
    assert len(frames) == 5 and counted.reads == 5 + 1 + 1000


def write_clip(path, images):
    """An MJPG clip of 640x480 images at 10 fps."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def dev_frames(dev_root, n):
    return [cv2.imread(str(dev_root / "set3" / f"{k}.png")) for k in range(n)]


def test_a_video_file_loops_where_a_folder_would(tmp_path, dev_root):
    # The capture tool and live mode in a window loop their files: a clip starts again, as a folder does.
    clip = write_clip(tmp_path / "clip.avi", dev_frames(dev_root, 3))
    once = sources.open_source(str(clip))
    frames = list(once)
    assert len(frames) == 3 and not once.loop
    looped = sources.open_source(str(clip), loop=True)
    again = [looped.read() for _ in range(7)]
    assert all(np.array_equal(a, frames[k % 3]) for k, a in enumerate(again))
    # A one-frame clip, whose rewind OpenCV reports done without doing it, ended the capture tool at
    # once; and a file whose name holds glob characters was taken for a pattern matching nothing.
    single = write_clip(tmp_path / "take[1].avi", frames[:1])
    (only,) = list(sources.open_source(str(single)))
    looped = sources.open_source(str(single), loop=True)
    again = [looped.read() for _ in range(4)]
    assert all(a is not None and np.array_equal(a, only) for a in again)


def test_a_looping_video_that_goes_away_is_an_error_not_an_end(tmp_path, dev_root):
    # Deleted while the capture tool played it, the session ended as if it had finished (exit 0),
    # dropping a running countdown without a word.
    clip = write_clip(tmp_path / "gone.avi", dev_frames(dev_root, 2))
    looped = sources.open_source(str(clip), loop=True)
    assert looped.read() is not None
    clip.unlink()
    assert looped.read() is not None  # the open file plays to its end
    with pytest.raises(HumansegError, match=rf"^video file {re.escape(str(clip))} could no longer be read") as err:
        looped.read()
    assert err.value.exit_code == 1  # a runtime failure, as a camera that stops (was 2, bad input)


def test_camera_numbers_and_frame_names_with_other_digits(tmp_path, dev_root, monkeypatch):
    # "2147483648" was a cv2.error traceback; "²" (a digit to isdigit(), not to int()) a ValueError.
    with pytest.raises(HumansegError, match=r"^camera index 2147483648 is out of range \(0 to 2147483647\)$"):
        sources.open_source("2147483648")
    with pytest.raises(HumansegError, match="^source not found: ²$"):
        sources.open_source("²")
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("1²2.png", "10.png", "2.png"):
        (folder / name).write_bytes((dev_root / "set3" / "0.png").read_bytes())
    source = sources.open_source(str(folder))
    assert [Path(p).name for p in source.paths] == ["1²2.png", "2.png", "10.png"]


def test_a_mirrored_background_is_told_on_every_dev_frame(dev_root):
    # Every dev frame, the person in view and the exposure moved, against its set's bkg.png as it is
    # and flipped; and a room against itself flipped, which only an asymmetric room tells apart.
    for info in store.scan_root(dev_root):
        bkg = store.read_background(info)
        for k in info.frames:
            frame = store.read_frame(info, k)
            assert not looks_mirrored(frame, bkg), (info.number, k)
            assert looks_mirrored(frame, cv2.flip(bkg, 1)), (info.number, k)
            assert looks_mirrored(cv2.flip(frame, 1), bkg), (info.number, k)
    symmetric = np.zeros((48, 64, 3), np.uint8)
    symmetric[10:30, 20:44] = 200  # the same both ways
    assert not looks_mirrored(symmetric, symmetric) and not looks_mirrored(cv2.flip(symmetric, 1), symmetric)


def test_a_mirrored_background_is_told_on_portrait_frames(dev_root):
    # Every dev set cut to 3:4 around its person and scaled to 480x640: the person fills much of the
    # frame, and one correlation over the whole picture took set 5's frame 2 for mirrored (its
    # warning told the user to pass --mirror, making every mask wrong) and missed two mirrored frames.
    # At 9:16 (270 columns, 720x1280) too, where the right way wins by 0.20 at least.
    for info in store.scan_root(dev_root):
        bkg = store.read_background(info)
        masks = [store.read_mask(info.mask_path(k), bkg.shape) for k in info.labeled]
        for width, size in ((360, (480, 640)), (270, (720, 1280))):
            x = int(np.clip(person_centre(masks) - width // 2, 0, 640 - width))
            room = portrait(bkg, x, width, size)
            for k in info.frames:
                frame = portrait(store.read_frame(info, k), x, width, size)
                assert not looks_mirrored(frame, room), (info.number, k, size)
                assert looks_mirrored(cv2.flip(frame, 1), room), (info.number, k, size)


def test_an_unreadable_image_in_a_folder_source_is_named_when_reached(tmp_path, dev_root):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.png").write_bytes((dev_root / "set3" / "0.png").read_bytes())
    (folder / "1.png").write_bytes(b"cut short")
    source = sources.open_source(str(folder))
    assert source.read().shape == (480, 640, 3)
    with pytest.raises(HumansegError, match=rf"^unreadable image in source: {folder / '1.png'}$"):
        source.read()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HumansegError, match=r"^no images found"):
        sources.open_source(str(empty))


def _dev_frames(tmp_path, dev_root, n: int):
    """A folder tmp_path/frames of dev set3's first n frames, as 0.png, 1.png, ..."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(n):
        (folder / f"{k}.png").write_bytes((dev_root / "set3" / f"{k}.png").read_bytes())
    return folder


def test_an_image_of_a_folder_source_that_goes_while_playing_is_a_runtime_failure(tmp_path, dev_root):
    # An image deleted while the tool ran, or one read on an earlier pass and damaged since, was said as
    # bad input ("unreadable image in source", exit 2) though the source was good when it started: as
    # a video file that can no longer be read, it is exit 1. One never read before is bad input.
    folder = _dev_frames(tmp_path, dev_root, 3)
    source = sources.open_source(str(folder), loop=True)
    assert source.read() is not None
    (folder / "1.png").unlink()
    with pytest.raises(HumansegError) as gone:
        source.read()
    assert str(gone.value) == (f"image {folder / '1.png'} in source could no longer be read (moved, deleted or "
                               f"changed while playing?)") and gone.value.exit_code == 1
    (folder / "1.png").write_bytes((dev_root / "set3" / "1.png").read_bytes())
    source = sources.open_source(str(folder), loop=True)
    assert all(source.read() is not None for _ in range(3))
    (folder / "2.png").write_bytes(b"cut short")  # read once, damaged since
    assert source.read() is not None and source.read() is not None
    with pytest.raises(HumansegError, match="2.png in source could no longer be read") as damaged:
        source.read()
    assert damaged.value.exit_code == 1
    source = sources.open_source(str(folder), loop=True)  # never read: bad input, as before
    source.read(), source.read()
    with pytest.raises(HumansegError, match=rf"^unreadable image in source: {folder / '2.png'}$") as bad:
        source.read()
    assert bad.value.exit_code == 2


def test_a_folder_of_numbered_frames_tells_each_frames_number(tmp_path, copy_set):
    copy_set(3)
    root = copy_set(3, 4)  # set3 and set4, the same frames
    source = sources.ImageFolderSource.from_spec(str(root / "set3"))
    got = []
    while source.read() is not None:
        got.append(source.last_number)
    assert got == source.frame_numbers == [0, 1, 2, 3]
    # Other names among them, or one name twice (a glob over two sets), and the frames are only counted.
    both = sources.ImageFolderSource.from_spec(str(root / "set*" / "*.png"))
    assert both.frame_numbers is None
    # Each folder's frames together, in natural order (they alternated: set3/0, set4/0, set3/1, ...).
    assert [os.path.relpath(p, root) for p in both.paths] == [f"set{n}/{k}.png" for n in (3, 4) for k in range(4)]
    # Another image in a capture set's folder (pose --out's drawing, say) is no frame of the set: it
    # was read as one, and the masks of live --save-masks were then counted, each named one frame off.
    img = cv2.imread(str(root / "set3" / "0.png"))
    cv2.imwrite(str(root / "set3" / "0_pose.png"), img)
    for spec in (str(root / "set3"), str(root / "set3" / "*.png")):
        with pytest.warns(UserWarning, match=r"set3(/\*.png)?: 0_pose.png not read \(in a capture set's folder "
                                             r"only its K.png frames are frames\)"):
            source = sources.ImageFolderSource.from_spec(spec)
        assert source.frame_numbers == [0, 1, 2, 3] and len(source.paths) == 4
    # Asked for by name, it is taken.
    assert sources.ImageFolderSource.from_spec(str(root / "set3" / "*_pose.png")).paths == [
        str(root / "set3" / "0_pose.png")]
    # In a folder of other pictures, other names make the frames only counted.
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("0.png", "1.png", "walk.png"):
        cv2.imwrite(str(plain / name), img)
    source = sources.ImageFolderSource.from_spec(str(plain))
    assert source.frame_numbers is None and len(source.paths) == 3
    assert source.read() is not None and source.last_number is None
    # Nor is a folder of frames named otherwise a capture set because a bkg.png was saved into it
    # (live --save-bkg frames/bkg.png).
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("frame_001.png", "frame_002.png", "bkg.png"):
        cv2.imwrite(str(shots / name), img)
    assert sources.ImageFolderSource.from_spec(str(shots)).paths == [str(shots / "frame_001.png"),
                                                                     str(shots / "frame_002.png")]


def test_videos_in_a_folder_source_are_said_not_read(tmp_path, dev_root):
    # They were passed over in silence beside images, and a folder of videos only blamed "bkg.png,
    # masks and predictions".
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), cv2.imread(str(dev_root / "set3" / "0.png")))
    (folder / "clip.mp4").write_bytes(b"not decoded here")
    with pytest.warns(UserWarning, match=r"mixed: clip.mp4 not read \(videos are not read from a folder or "
                                         r"pattern: give one as --source\)"):
        assert sources.open_source(str(folder)).paths == [str(folder / "0.png")]
    (folder / "0.png").unlink()
    with pytest.raises(HumansegError, match=r"no images found in source: .*mixed \(videos are not read from a "
                                            r"folder or pattern: give one as --source, e.g. clip.mp4\)$"):
        sources.open_source(str(folder))


def test_a_video_reporting_an_impossible_frame_rate_is_taken_as_30(tmp_path, dev_root):
    # A header of 90000 fps made the recording's writer fail ("Could not open codec") and blame the place.
    clip = write_clip(tmp_path / "clip.avi", dev_frames(dev_root, 1))
    source = sources.open_source(str(clip))
    assert source.fps == pytest.approx(10.0)

    class Reporting:  # a capture whose header says `rate`
        def __init__(self, rate):
            self.rate = rate

        def get(self, prop):
            return self.rate

    for reported, taken in ((90000.0, 30.0), (0.0, 30.0), (-1.0, 30.0), (float("nan"), 30.0), (240.0, 240.0)):
        source.cap = Reporting(reported)
        assert source.fps == taken, reported


def test_an_empty_source_or_a_pipe_is_said_for_what_it_is(tmp_path):
    # Both were "source not found" (an empty one as "source not found: " naming nothing).
    with pytest.raises(HumansegError, match=r"^source is empty: give a camera index, a video file or an image "
                                            r"folder$"):
        sources.open_source("")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(HumansegError, match=re.escape(f"source is not a file or a folder: {tmp_path / 'pipe'}")):
        sources.open_source(str(tmp_path / "pipe"))
    with pytest.raises(HumansegError, match=re.escape(f"source not found: {tmp_path / 'none'}")):
        sources.open_source(str(tmp_path / "none"))


def test_a_folder_without_bkg_png_skips_predictions_and_a_looped_folder_starts_at_its_first_image(tmp_path,
                                                                                                   dev_root):
    # A folder of frames and the capture tool's K_pred.png (no bkg.png: not a capture set, whose strays
    # are dropped anyway): the predictions are no frames, as the README says.
    folder = tmp_path / "frames"
    folder.mkdir()
    images = [cv2.imread(str(dev_root / "set3" / f"{k}.png")) for k in range(2)]
    for k, image in enumerate(images):
        cv2.imwrite(str(folder / f"{k}.png"), image)
    (folder / "0_pred.png").write_bytes((dev_root / "set3" / "0_mask.png").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = sources.open_source(str(folder), loop=True)
    assert source.paths == [str(folder / "0.png"), str(folder / "1.png")]
    # Looped (the capture tool, live mode in a window), it goes round from its first image each time.
    got = [source.read() for _ in range(5)]
    assert all(np.array_equal(a, images[k % 2]) for k, a in enumerate(got))


def test_a_video_falling_short_of_its_stated_count_by_the_slack_ends_quietly(monkeypatch, tmp_path):
    # Some files state an estimated count: COUNT_SLACK frames short is a quiet end, one more is said.
    for stated, said in ((3 + sources.COUNT_SLACK, False), (4 + sources.COUNT_SLACK, True)):
        cap = FakeCapture([True, True, True], then=False)
        cap.frame_count = stated
        clip = opened(monkeypatch, str(tmp_path / "clip.mp4"), cap)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frames = list(clip)
        assert len(frames) == 3
        assert [str(w.message) for w in caught] == ([f"video file {tmp_path / 'clip.mp4'}: {stated - 3} of its "
                                                     f"{stated} frames could not be decoded (cut short, or "
                                                     f"damaged?); it ends after 3 frames"] if said else []), stated


def test_the_highest_camera_index_is_opened_not_refused(monkeypatch):
    # The range the error gives (0 to 2147483647) includes its end.
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda s: FakeCapture([True]))
    camera = sources.open_source(str(sources.MAX_CAMERA_INDEX))
    assert camera.is_camera and camera.spec == 2**31 - 1 and camera.read() is not None


def test_a_room_nearly_the_same_both_ways_is_not_taken_for_mirrored(dev_root):
    # A room whose two halves mirror each other, a small thing on one side of it in the background and
    # on the other in the frame: flipped it matches a little better, not clearly (under the margin),
    # so no warning tells the user to pass --mirror and make every mask wrong.
    left = cv2.imread(str(dev_root / "set3" / "bkg.png"))[:, :320]
    room = np.hstack([left, cv2.flip(left, 1)])
    background, frame = room.copy(), room.copy()
    cv2.rectangle(background, (60, 200), (100, 240), (30, 30, 200), -1)
    cv2.rectangle(frame, (540, 200), (580, 240), (30, 30, 200), -1)
    assert not looks_mirrored(frame, background)
    assert looks_mirrored(frame, background, margin=0.0)  # (flipped, it does match it better)


def test_images_with_upper_case_extensions_are_frames(tmp_path, dev_root):
    # A camera's or a phone's pictures: IMG_0002.JPG, IMG_0010.PNG.
    images = dev_frames(dev_root, 2)
    cv2.imwrite(str(tmp_path / "IMG_0010.PNG"), images[1])
    cv2.imwrite(str(tmp_path / "IMG_0002.JPG"), images[0])
    source = sources.open_source(str(tmp_path))
    assert [Path(p).name for p in source.paths] == ["IMG_0002.JPG", "IMG_0010.PNG"]
    assert np.array_equal(source.read(), cv2.imread(str(tmp_path / "IMG_0002.JPG")))
    # Named alone, it is read as the image it is (not decoded as a one-frame video).
    single = sources.open_source(str(tmp_path / "IMG_0002.JPG"))
    assert isinstance(single, sources.ImageFolderSource)
    assert np.array_equal(single.read(), cv2.imread(str(tmp_path / "IMG_0002.JPG")))


def test_a_single_undecodable_frame_is_named_alone(monkeypatch, tmp_path):
    cap = FakeCapture([True, False, True])
    clip = opened(monkeypatch, str(tmp_path / "clip.mp4"), cap)
    with pytest.warns(UserWarning, match=r": frame 2 \(counted from 1\) could not be decoded \(damaged\?\); skipped$"):
        frames = list(clip)
    assert [f[0, 0, 0] for f in frames] == [1, 3]


def test_a_looped_video_with_a_damaged_frame_plays_the_same_frames_each_time(monkeypatch, tmp_path):
    # Each pass opens the file anew: its frames are counted from its start again, so the damaged frame
    # is passed over on every pass, not only on the first.
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda s: FakeCapture([True, False, True]))
    looped = VideoSource(str(tmp_path / "clip.mp4"), loop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [looped.read()[0, 0, 0] for _ in range(6)]
    assert got == [1, 3] * 3


def test_a_single_image_loops_as_a_folder_does(tmp_path, dev_root):
    # The capture tool loops its source: one photo given by name is shown until the user quits.
    (tmp_path / "room.png").write_bytes((dev_root / "set3" / "bkg.png").read_bytes())
    looped = sources.open_source(str(tmp_path / "room.png"), loop=True)
    assert all(looped.read() is not None for _ in range(3))
    once = sources.open_source(str(tmp_path / "room.png"))
    assert once.read() is not None and once.read() is None


def test_a_camera_index_with_spaces_around_it_is_that_camera(monkeypatch):
    # --source " 1" (a quoted shell variable with a space): camera 1, not "source not found".
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda s: FakeCapture([True]))
    camera = sources.open_source(" 1 ")
    assert camera.is_camera and camera.spec == 1


@pytest.mark.parametrize("spec", ["{root}", "{root}/set*"])
def test_an_images_root_as_source_names_its_set_folders_and_a_pattern(copy_set, spec):
    # --source images (the captures' root) or images/set*: the set folders were counted as "other
    # files" that are "bkg.png, masks, predictions and files of other types": they are folders, whose
    # frames a set folder or a pattern such as images/set*/*.png would give.
    root = copy_set(3)
    copy_set(4)
    with pytest.raises(HumansegError) as err:
        sources.open_source(spec.format(root=root))
    message = str(err.value)
    assert message.startswith("no images found in source: ")
    assert "other files" not in message, message
    assert "2 folders, not searched" in message and f"e.g. {root / 'set3'}," in message, message
    # (the pattern given, continued: from the folders' parent, images/*/*.png took other folders too)
    pattern = root / "*" / "*.png" if spec == "{root}" else root / "set*" / "*.png"
    assert f"'{pattern}'" in message, message


def test_sources_are_context_managers_that_close_what_they_opened(tmp_path, dev_root):
    # A video file is let go when its `with` block ends (a file kept open is kept locked on Windows and
    # by some network shares); a folder plays at 30 fps, the rate a recording of it is written at.
    clip = write_clip(tmp_path / "clip.avi", dev_frames(dev_root, 2))
    with sources.open_source(str(clip)) as video:
        assert video.read() is not None and video.cap.isOpened()
    assert not video.cap.isOpened()
    with sources.open_source(str(dev_root / "set3")) as folder:
        assert folder.fps == 30.0
        assert len(list(folder)) == len(store.scan_set(dev_root, 3).frames)


def test_a_strip_a_few_pixels_tall_is_never_taken_for_mirrored(dev_root):
    # Under 8 rows at the comparison's 64 px width there is no block to compare: not mirrored, whichever
    # way round (not a reshape error out of predict or live on such a frame).
    info = store.scan_set(dev_root, 3)
    frame, bkg = store.read_frame(info, 0), store.read_background(info)
    for rows in (1, 40):  # 640x40: a thumbnail 4 rows tall
        strip, room = frame[200:200 + rows], bkg[200:200 + rows]
        assert not looks_mirrored(strip, room) and not looks_mirrored(strip, cv2.flip(room, 1))
    # 640x80 is one row of blocks: told again.
    assert looks_mirrored(frame[200:280], cv2.flip(bkg[200:280], 1))


def test_a_source_not_ours_to_read_is_bad_input_naming_it(tmp_path, dev_root, unprivileged):
    # A folder whose mode refuses us was "Error: <folder>: Permission denied", exit 1, without --source;
    # an image in a folder not ours to enter was "source not found", though it is there.
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(dev_root / "set1" / "0.png", folder / "0.png")
    folder.chmod(0)
    try:
        for spec in (folder, folder / "0.png"):
            r = subprocess.run(unprivileged([sys.executable, "-m", "humanseg", "live", "--source", str(spec), "--bkg",
                                             str(dev_root / "set1" / "bkg.png"), "--no-window"]),
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert (r.returncode, r.stderr) == (2, f"Error: --source {spec}: source unreadable (Permission denied): "
                                                   f"{spec}\n")
    finally:
        folder.chmod(0o755)


def test_a_source_named_in_bytes_that_are_not_utf8_is_shown_escaped_throughout():
    # The option's copy of the name was escaped, the message's own copy printed raw.
    spec = os.fsdecode(b"/nonexistent/missing\xe9")
    with pytest.raises(HumansegError) as err:
        sources.open_source_quietly(spec)
    assert str(err.value) == "--source /nonexistent/missing\\xe9: source not found: /nonexistent/missing\\xe9"


def test_check_all_finds_an_image_differing_in_width_alone(tmp_path, dev_root):
    # A 600x480 crop among 640x480 frames: found before the run (by heights alone it was not, and the
    # run stopped at that frame with the results before it written).
    folder = tmp_path / "frames"
    folder.mkdir()
    frame = cv2.imread(str(dev_root / "set3" / "0.png"))
    cv2.imwrite(str(folder / "0.png"), frame)
    cv2.imwrite(str(folder / "1.png"), frame[:, :600])
    with pytest.raises(HumansegError, match=r"1\.png is 600x480 but .*0\.png is 640x480"):
        sources.open_source(str(folder)).check_all()


def test_the_first_image_damaged_after_a_whole_pass_is_a_runtime_failure(tmp_path, dev_root):
    # Read on the first pass, damaged since: a failure of the run, exit 1, as for the last image (not
    # bad input, exit 2, for the first image of the second pass).
    folder = _dev_frames(tmp_path, dev_root, 2)
    source = sources.open_source(str(folder), loop=True)
    assert source.read() is not None and source.read() is not None
    (folder / "0.png").write_bytes(b"cut short")
    with pytest.raises(HumansegError, match="0.png in source could no longer be read") as damaged:
        source.read()
    assert damaged.value.exit_code == 1
