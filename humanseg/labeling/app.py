"""The labeling session: walk a set's frames, edit each in an OpenCV window, save accepted labels."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from humanseg import errors, store
from humanseg.display import fit_zoom, read_key, require_display
from humanseg.errors import AlreadyExists, HumansegError
from humanseg.labeling.editor import CLOSE_RADIUS, EDGE_RADIUS, GRAB_RADIUS, PolygonEditor
from humanseg.labeling.geometry import mask_to_shapes, shapes_to_mask
from humanseg.labeling.guess import EXISTING_EPSILON, Guesser
from humanseg.labeling.labelme import read_labelme_doc, to_labelme
from humanseg.live import background_mismatch

WINDOW = "humanseg label"
KEY_ACCEPT = {10, 13, 32}
KEY_QUIT = {ord("q"), 27}
KEY_UNDO = {ord("z"), 8}


class DecisionKeys:
    """Whether Enter / space / n (accept, skip: the keys that move to the next frame) count.

    Not while the frame has been on screen less than `settle` seconds (keys typed ahead while it
    loaded would accept a frame never looked at), and not while a key seems held down, across frames:
    a held key repeats after a delay (660 ms in X's default, 500-600 ms on most desktops), then 25-30
    times a second, so a press within `repeat_delay` of the last one that counted, or less than
    `repeat_gap` after any, is the same press. A held Enter accepts one frame, not the set. Times are
    seconds of one monotonic clock."""

    def __init__(self, settle: float = 0.5, repeat_gap: float = 0.2, repeat_delay: float = 0.8):
        self.settle, self.repeat_gap, self.repeat_delay = settle, repeat_gap, repeat_delay
        self.last = self.last_counted = -math.inf

    def ready(self, now: float, shown_at: float) -> bool:
        """A press now would count (unless it follows another within repeat_gap)."""
        return now - shown_at >= self.settle and now - self.last_counted >= self.repeat_delay

    def counts(self, now: float, shown_at: float) -> bool:
        held = now - self.last < self.repeat_gap or now - self.last_counted < self.repeat_delay
        self.last = now
        if held or now - shown_at < self.settle:
            return False
        self.last_counted = now
        return True


class AskFirst:
    """Whether a key that leaves a frame unsaved (q / Esc, n) acts: at once on a frame with nothing
    unsaved, else only when pressed again within `window` seconds of the press that asked. OpenCV
    returns one key per waitKey call, the last one typed: an Enter and a q or n typed just after it
    that reach the window together (a busy machine) came back as the q or n alone, and the frame's
    polygons were gone unsaved. Times are seconds of one monotonic clock."""

    def __init__(self, window: float = 3.0):
        self.window = window
        self.asked_at = -math.inf

    def asking(self, now: float) -> bool:
        """A press asked less than `window` seconds ago (the status line says so)."""
        return now - self.asked_at < self.window

    def acts(self, now: float, unsaved: bool) -> bool:
        if not unsaved or self.asking(now):
            return True
        self.asked_at = now
        return False


class EventLog:
    """One JSON object per line on stdout when enabled (GUI tests wait on these)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, event: str, **fields) -> None:
        if self.enabled:
            print(json.dumps({"event": event, **fields}), flush=True)


@dataclass
class Summary:
    """What a labeling session did, for the closing line."""

    set_number: int
    to_label: int = 0
    saved: int = 0
    unchanged: int = 0
    skipped: int = 0
    vertices_edited: int = 0
    unreadable: int = 0
    quit: bool = False

    def line(self) -> str:
        # (The frames accepted unchanged are among those saved; a frame passed over is unreadable or
        # of another size than bkg.png, each named in its warning.)
        return (f"set {self.set_number}: saved {self.saved} of {self.to_label} frame(s) "
                f"({self.unchanged} accepted unchanged), {self.skipped} skipped, "
                f"{self.vertices_edited} vertices edited"
                + (f", {self.unreadable} passed over (unreadable or not bkg.png's size)" if self.unreadable else "")
                + (" (quit early)" if self.quit else ""))


def frames_to_label(info: store.SetInfo, redo: int | None, all_frames: bool) -> list[int]:
    """Frame numbers to open: the unlabeled ones, or [redo], or every frame with all_frames."""
    if not info.frames:
        raise HumansegError(f"set {info.number} has no frames (no K.png): {info.path}"
                            + store.passed_over(info.path, sets=False))
    if redo is not None:
        if redo not in info.frames:
            raise HumansegError(f"--redo {redo}: no frame {info.frame_path(redo)}")
        return [redo]
    return list(info.frames) if all_frames else info.unlabeled


def readable_frames(info: store.SetInfo, ks: list[int], bkg_shape: tuple[int, ...], summary: Summary, emit):
    """Yield (i, k, frame) for each frame in ks (i counts from 1 in ks). In a walk of several, an
    unreadable K.png or one of another size than bkg.png is named in one warning and passed over, so
    the frames after it can still be labeled (with one frame, as for --redo K, it is the error)."""
    for i, k in enumerate(ks, 1):
        try:
            frame = store.read_frame(info, k, bkg_shape)
        except HumansegError as exc:
            if len(ks) == 1:
                raise
            print(f"warning: {exc}; passed over (not labeled)", file=sys.stderr)
            summary.unreadable += 1
            emit("unreadable", frame=k, reason=str(exc))
            continue
        yield i, k, frame


def pixels_apart(shapes, mask: np.ndarray) -> int:
    """Pixels of the mask (0/255) or of the shapes' raster that are more than 1 px from the other: how
    far the polygons are from the mask, not counting outlines that another rasteriser (labelme's, or
    coordinates rounded in K.json) draws one pixel off."""
    import cv2

    drawn = shapes_to_mask(shapes, *mask.shape[:2]) > 0
    held = mask > 0
    grow = np.ones((3, 3), np.uint8)
    near_drawn = cv2.dilate(drawn.astype(np.uint8), grow) > 0
    near_held = cv2.dilate(held.astype(np.uint8), grow) > 0
    return int(np.count_nonzero(held & ~near_drawn) + np.count_nonzero(drawn & ~near_held))


# K.json is the editable form of K_mask.png; more pixels apart than this (or than 0.2% of the person)
# means the mask was changed after the json was written, by another tool, and the mask is the label.
JSON_MASK_TOLERANCE = 20


def _json_against_mask(info: store.SetInfo, k: int, shapes, shape: tuple[int, ...]) -> None:
    """HumansegError when an existing mask disagrees with K.json's polygons (an unreadable mask, or one
    of another size, is left to the json, the better of the two: said, and written anew on accept)."""
    try:
        mask = store.read_mask(info.mask_path(k), shape)
    except HumansegError as exc:
        print(f"warning: {exc}; editing {info.json_path(k).name}'s polygons, and accepting the frame "
              f"writes the mask anew from them", file=sys.stderr)
        return
    apart = pixels_apart(shapes, mask)
    if apart > max(JSON_MASK_TOLERANCE, 0.002 * np.count_nonzero(mask)):
        raise HumansegError(f"{info.json_path(k)} does not match {info.mask_path(k).name} ({apart} pixels "
                            f"apart: the mask was changed since, by another tool?)")


def initial_shapes(info: store.SetInfo, k: int, frame: np.ndarray, guesser: Guesser | None):
    """Shapes a frame opens with and where they came from: json, mask, pred, model, diff or none.
    (None, "kept"): a K.json without its mask that cannot be opened on this frame (unreadable, or
    drawn on an image of another size): the frame is passed over, as saving would replace that file."""
    return initial_label(info, k, frame, guesser)[:2]


def initial_label(info: store.SetInfo, k: int, frame: np.ndarray, guesser: Guesser | None):
    """initial_shapes, and the K.json document being edited: the one the shapes came from, or a
    readable one the mask's outline (or a guess) replaces under --redo / --all; None otherwise."""
    labeled = info.mask_path(k).is_file()
    base = None  # a readable K.json that the mask's outline replaces still keeps its other shapes and keys
    passed_over = None  # the K.json's problem, said with what opens instead
    if info.json_path(k).is_file():
        try:
            shapes, doc = read_labelme_doc(info.json_path(k), frame.shape[:2])
            base = doc
            if labeled:  # the mask is the label: polygons that no longer draw it would replace it on save
                _json_against_mask(info, k, shapes, frame.shape)
            return shapes, "json", doc
        except HumansegError as exc:
            if not labeled:  # not asked to redo this label: the file is the user's, and stays
                print(f"warning: {exc}; frame {k} is passed over, as saving would replace that file: "
                      f"mend it or move it away to label this frame", file=sys.stderr)
                return None, "kept", None
            passed_over = exc
    if labeled:  # opened with --redo / --all
        try:
            mask = store.read_mask(info.mask_path(k), frame.shape)
            if passed_over:
                print(f"warning: {passed_over}; editing the mask's outline instead", file=sys.stderr)
            return mask_to_shapes(mask, EXISTING_EPSILON), "mask", base
        except HumansegError as exc:  # a broken label is what --redo is there to mend
            if passed_over:  # (it said the mask's outline opened, then that the mask could not be read)
                print(f"warning: {passed_over}; passed over", file=sys.stderr)
            print(f"warning: {exc}; starting from the guess instead (saving replaces it"
                  f"{' and ' + info.json_path(k).name if passed_over else ''})", file=sys.stderr)
    if guesser is None:
        return [], "none", base
    guess = guesser.guess(frame, info.pred_path(k))
    return guess.shapes(), guess.source, base


@dataclass(frozen=True)
class Opened:
    """Which of a frame's label files were there when it was opened: only those may be replaced by
    its save (a label another labeler saved meanwhile is not overwritten: the save fails instead)."""

    mask: bool
    json: bool

    @classmethod
    def of(cls, info: store.SetInfo, k: int) -> "Opened":
        return cls(info.mask_path(k).is_file(), info.json_path(k).is_file())


def _content(path: Path) -> bytes | None:
    """A label file's bytes, None where it cannot be read (none there, a folder)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def mask_intact(info: store.SetInfo, k: int, shape: tuple[int, ...]) -> bool:
    """K_mask.png can be read as a mask of the frame's size."""
    try:
        store.read_mask(info.mask_path(k), shape)
        return True
    except HumansegError:
        return False


class FrameChanged(HumansegError):
    """The frame file was replaced while its label was drawn: saving would label another picture."""


class FrameGone(FrameChanged):
    """The frame file was deleted (or moved away) while its label was drawn."""


def save_label(info: store.SetInfo, k: int, editor: PolygonEditor, shape: tuple[int, int],
               opened: Opened, base: dict | None = None, keep_mask: bool = False,
               keep_json: bool = False) -> tuple[Path, Path]:
    """Write K_mask.png and K.json together (both or neither); replaces only files there when the
    frame was opened (with --redo / --all, or a K.json left without its mask). base: the K.json the
    frame opened from, whose shapes and keys the labeler does not edit are kept (to_labelme).
    keep_mask: the mask there is the label as it is; only K.json is written (from its outline).
    keep_json: the K.json there is the label as it is; only the mask is written (drawn from it)."""
    height, width = shape
    if keep_json:
        return store.write_bytes_atomic(info.mask_path(k), store.encode_png(editor.mask(height, width)),
                                        opened.mask), info.json_path(k)
    doc = to_labelme(editor.shapes, info.frame_path(k).name, height, width, base=base)
    if keep_mask:
        return info.mask_path(k), store.write_bytes_atomic(info.json_path(k), store.encode_json(doc), opened.json)
    mask_path, json_path = store.write_together([
        (info.mask_path(k), store.encode_png(editor.mask(height, width)), opened.mask),
        (info.json_path(k), store.encode_json(doc), opened.json),
    ])
    return mask_path, json_path


def label_set(images: str | os.PathLike, set_number: int, redo: int | None = None, all_frames: bool = False,
              use_guess: bool = True, weights: str | None = None, log_events: bool = False,
              zoom: float | None = None) -> Summary:
    """Run the labeler on set `set_number` under images; returns what was done. zoom: the window's
    scale of the frames (default: 1, or less for frames larger than display.FIT_WIDTH x FIT_HEIGHT)."""
    info = store.scan_set(images, set_number)
    ks = frames_to_label(info, redo, all_frames)
    summary = Summary(set_number, to_label=len(ks))
    emit = EventLog(log_events)
    said = sys.stderr if log_events else sys.stdout  # with the event log, stdout holds JSON lines alone
    if not ks:
        if use_guess and weights is not None:  # named, it is checked with nothing to label too
            Guesser(None, weights=weights).require_model()
        print(f"set {set_number}: all {len(info.frames)} frame(s) already have a mask "
              f"(use --redo K or --all to edit them)", file=said)
        emit("summary", **summary.__dict__)
        return summary
    # Found now, not when the first polygon drawn cannot be saved.
    store.refuse_unwritable(info.path, f"set {set_number}:", folder=True)
    background = store.read_background(info)
    guesser = Guesser(background, weights=weights) if use_guess else None
    if guesser is not None and weights is not None:
        guesser.require_model()  # an explicit --weights that cannot be used is an error, not a fallback
    require_display()  # before any HighGUI call: Qt aborts the process without a display

    import cv2

    _open_window(cv2)
    noted = False
    decisions = DecisionKeys()
    try:
        for i, k, frame in readable_frames(info, ks, background.shape, summary, emit):
            frame_file = store.file_identity(info.frame_path(k))  # the K.png this label is drawn on
            opened = Opened.of(info, k)
            if opened.mask and redo is None and not all_frames:
                # Unlabeled when the walk began: another labeler has labeled it since. Opened, its
                # label would look like a guess, and accepting it would replace that label.
                print(f"warning: frame {k} was labeled meanwhile (by another labeler?); passed over, and "
                      f"its label kept (--redo {k} to edit it)", file=sys.stderr)
                summary.skipped += 1
                emit("skipped", frame=k, reason="labeled meanwhile")
                continue
            taken = [p for p, there in ((info.mask_path(k), opened.mask), (info.json_path(k), opened.json))
                     if not there and os.path.lexists(p)]
            if taken:
                # A folder (or a link to nothing) where the mask or K.json goes: the label could never be
                # saved, and the save's failure said "labeled meanwhile (by another labeler?)".
                why = "is a folder" if taken[0].is_dir() else store.not_a_file(taken[0])
                print(f"warning: frame {k}: {store.shown_path(taken[0])} {why}, so no label can be "
                      f"saved there; passed over (move it away to label frame {k})", file=sys.stderr)
                summary.skipped += 1
                emit("skipped", frame=k, reason="label path taken")
                continue
            json_file = store.file_identity(info.json_path(k))  # the K.json the label may open from
            # What the label files held as the frame opened: by their bytes, not identity (a save that
            # failed restores the file it replaced as a new file where the file system has no hard links).
            held = {path: _content(path) for path in (info.mask_path(k), info.json_path(k))}
            shapes, source, base = initial_label(info, k, frame, guesser)
            if shapes is None:  # a K.json of the user's this frame cannot open, and saving would replace
                summary.skipped += 1
                emit("skipped", frame=k, reason="kept json")
                continue
            if source == "diff" and guesser.model_problem and not noted:
                noted = True
                print(f"note: no model ({guesser.model_problem}); guessing by background "
                      f"differencing", file=sys.stderr)
            title = f"set {set_number} \u2014 frame {k} ({i} of {len(ks)})"
            z = zoom or fit_zoom(frame.shape[1], frame.shape[0], enlarge=True)
            # Grabbing and closing distances are the same on screen whatever the scale.
            editor = PolygonEditor(shapes, close_radius=CLOSE_RADIUS / z, grab_radius=GRAB_RADIUS / z,
                                   edge_radius=EDGE_RADIUS / z)
            # A frame of another room than bkg.png, or taken after the camera moved, is said (as the
            # capture tool, training and evaluate say it), by the outline it opens with as the person:
            # not where it opens empty (--no-guess: the person's pixels would count as the room's, and
            # 18 of the 52 dev frames looked moved).
            notice = ""
            if source != "none" and background_mismatch(frame, background, editor.mask(*frame.shape[:2])):
                notice = f"{info.frame_path(k).name} does not match bkg.png (camera moved?)"
                print(f"warning: frame {k}: {store.shown_path(info.frame_path(k))} does not match its bkg.png: "
                      f"most of its room differs from it, or is shifted against it (the camera moved after "
                      f"it was taken, or another room's?), so training would learn from it wrong; it can be "
                      f"labeled all the same", file=sys.stderr)
                emit("background_mismatch", frame=k, path=str(info.frame_path(k)))
            while True:
                outcome = _edit_frame(cv2, frame, background, editor, title, source, emit, k, z, decisions,
                                      notice)
                if not isinstance(outcome, PolygonEditor):
                    break
                if (opened.mask and (source == "json" or source == "mask" and not opened.json) and not editor.changed
                        and mask_intact(info, k, frame.shape)):
                    # The label opened as it is, accepted as it is: its files are left alone (its
                    # outline redrawn would move up to ~100 pixels of a mask made by another tool). A
                    # K.json passed over (unreadable, or no longer the mask's), or a mask that cannot be
                    # read beside a good K.json, is written anew instead.
                    mask_path, json_path = info.mask_path(k), info.json_path(k) if opened.json else None
                    written = False
                    break
                try:
                    # The mask opened as it is (its K.json passed over: unreadable, another label's, drawn
                    # on another size), accepted as it is: the mask is the label, and its bytes stay
                    # (redrawn from its outline, a repaint lost up to ~100 pixels); only K.json is new.
                    keep_mask = (opened.mask and opened.json and source == "mask" and not editor.changed
                                 and mask_intact(info, k, frame.shape))
                    # A K.json without its mask (labelme's, say), accepted as it is: only the mask is
                    # written, the user's file left byte for byte (it was rewritten in the labeler's
                    # form: imagePath, the order of its shapes).
                    keep_json = (source == "json" and not opened.mask and not editor.changed
                                 and store.file_identity(info.json_path(k)) == json_file)
                    now = store.file_identity(info.frame_path(k))
                    if now is None:  # deleted (or moved away) while its label was drawn
                        raise FrameGone(f"{info.frame_path(k)} was deleted (or moved away) since it opened")
                    if now != frame_file:
                        # Deleted and captured again (a number freed is taken by the next capture): the
                        # label drawn on the old picture was saved beside the new one, without a word.
                        raise FrameChanged(f"{info.frame_path(k)} is not the frame this label was drawn on (it "
                                           f"was replaced since it opened)")
                    for path, there in ((info.mask_path(k), opened.mask), (info.json_path(k), opened.json)):
                        # A label file that was there when the frame opened (--redo, --all) and has been
                        # saved again since, by another labeler: kept, as one that appeared is. It was
                        # replaced without a word where both the mask and K.json were there.
                        if there and _content(path) != held[path]:
                            raise AlreadyExists(path)
                    mask_path, json_path = save_label(info, k, editor, frame.shape[:2], opened, base, keep_mask,
                                                      keep_json)
                    written = True
                    break
                except (HumansegError, OSError) as exc:  # a full disk, say: the polygons are not lost
                    if isinstance(exc, AlreadyExists):
                        what = ("it was labeled meanwhile (by another labeler?), and that label is kept; "
                                f"n to skip, q to quit, or --redo {k} later to edit it")
                    elif isinstance(exc, FrameGone):
                        what = "n to skip, q to quit"
                    elif isinstance(exc, FrameChanged):
                        what = "n to skip, q to quit (and run again to label the frame there now)"
                    else:
                        what = "accept again to retry, n to skip, q to quit"
                    print(f"warning: save failed: {errors.reason(exc)}; frame {k} stays open: {what}",
                          file=sys.stderr)
                    emit("save_failed", frame=k, reason=errors.reason(exc))
            if outcome is None:
                summary.quit = True
                emit("quit", frame=k)
                break
            if outcome == "skip":
                summary.skipped += 1
                emit("skipped", frame=k)
                continue
            unchanged = not editor.changed
            summary.saved += 1
            summary.unchanged += unchanged
            summary.vertices_edited += editor.vertices_edited
            if log_events:  # the area of the mask as it is on the disk (one kept is not its outline redrawn)
                try:
                    area = int(np.count_nonzero(store.read_mask(mask_path, frame.shape)))
                except HumansegError:  # (gone again meanwhile)
                    area = int(np.count_nonzero(editor.mask(*frame.shape[:2])))
                emit("saved", frame=k, mask=str(mask_path), json=json_path and str(json_path), source=source,
                     unchanged=unchanged, written=written, vertices_edited=editor.vertices_edited,
                     shapes=len(editor.shapes), area=area)
    finally:
        cv2.destroyAllWindows()
        cv2.waitKey(1)
    print(summary.line(), file=said)
    emit("summary", **summary.__dict__)
    if redo is None:
        try:  # frames captured into the set while it was labeled (the walk was fixed when it began)
            later = [k for k in store.scan_set(images, set_number).unlabeled if k not in ks]
        except (HumansegError, OSError):
            later = []
        if later:
            shown = ", ".join(map(str, later[:5])) + (", ..." if len(later) > 5 else "")
            print(f"set {set_number}: {len(later)} frame(s) captured meanwhile ({shown}) have no label yet: "
                  f"run again to label them", file=said)
    if summary.unreadable == len(ks):  # a bkg.png of another size, say: nothing could be labeled
        raise HumansegError(f"set {set_number}: none of the {len(ks)} frame(s) to label could be opened "
                            f"(each is named above)")
    return summary


def _open_window(cv2) -> None:
    cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)


def _edit_frame(cv2, frame, background, editor: PolygonEditor, title: str, source: str, emit, k: int,
                zoom: float = 1.0, decisions: DecisionKeys | None = None, notice: str = ""):
    """Edit one frame until accept (returns the editor), skip ("skip") or quit (None). The "ready"
    event comes once accept and skip would count (DecisionKeys.ready). notice: said on the status line
    all the while."""
    decisions = decisions or DecisionKeys()
    from humanseg.labeling.view import MouseAdapter, display_size, render

    height, width = frame.shape[:2]

    def changed(action):
        emit("edit", frame=k, action=action, shapes=len(editor.shapes), open=len(editor.current),
             vertices=editor.vertex_count, vertices_edited=editor.vertices_edited)

    mouse = MouseAdapter(editor, changed, zoom, size=(width, height))
    mouse.settle()  # (from just before it is first shown)

    def attach():  # the window's mouse and title (again in a window opened anew)
        cv2.setMouseCallback(WINDOW, mouse)
        cv2.setWindowTitle(WINDOW, title)

    attach()
    show_bkg = False
    quits, skips = AskFirst(), AskFirst()
    shown = None
    shown_at = ignored_at = None
    ready = False
    while True:
        # A polygon that cannot close (1-2 vertices, or all on one line) is said, until the next edit.
        hint = editor.refused_close == editor.version and editor.drawing
        flat = editor.refused_move == editor.version
        # An Enter / space / n that did not count is said for a second, so a second press follows.
        waited = ignored_at is not None and time.monotonic() - ignored_at < 1.0
        asked = quits.asking(time.monotonic()), skips.asking(time.monotonic())
        state = (editor.version, mouse.hover if editor.drawing else None, show_bkg, hint, waited, flat, asked)
        if state != shown:
            hole = editor.current_hole if editor.drawing else editor.hole_mode  # a Shift-click draws one too
            status = f"{'BACKGROUND  ' if show_bkg else ''}{'HOLE mode  ' if hole else ''}" \
                     f"start: {source}  shapes: {len(editor.shapes)}" + (f"  -- {notice}" if notice else "") + \
                     ("  -- this polygon cannot close: add vertices, or z / d" if hint else "") + \
                     ("  -- that move left a polygon of no area: taken back" if flat else "") + \
                     ("  -- key held or too soon: press it again" if waited else "") + \
                     ("  -- not saved: q or close again quits without this frame, Enter saves it" if asked[0]
                      else "") + \
                     ("  -- not saved: n again skips this frame without it, Enter saves it" if asked[1] else "")
            cv2.imshow(WINDOW, render(background if show_bkg else frame, editor, state[1], status, zoom=zoom))
            shown = state
        # OpenCV runs the mouse callback for every event waiting before waitKey returns the key: an
        # Enter and clicks made just after it, for the next frame, that came together (a busy machine)
        # reached this frame clicks first, began a polygon on it, and the Enter was refused (it cannot
        # close). Such clicks are taken back (editor.take_back_to_savable): nobody begins a polygon to
        # press Enter on it within the same waitKey call.
        steps = editor.steps
        key = read_key(15)
        now = time.monotonic()
        shown_at = now if shown_at is None else shown_at
        if not ready and decisions.ready(now, shown_at):
            ready = True
            shown_w, shown_h = display_size(width, height, zoom)
            emit("ready", window=WINDOW, title=title, frame=k, width=width, height=height, zoom=round(zoom, 4),
                 window_width=shown_w, window_height=shown_h, source=source, notice=notice,
                 shapes=len(editor.shapes), vertices=editor.vertex_count,
                 polygons=[[list(p) for p in s.points] for s in editor.shapes],
                 holes=[s.hole for s in editor.shapes])
        if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:  # closed by the window manager
            if quits.acts(now, editor.unsaved):
                return None
            # Edits not saved: as q does, it asks first, in the window opened again (OpenCV cannot keep
            # the window from closing), the polygons as they were; closed again within the time, it quits.
            emit("quit_asked", frame=k, by="close")
            # A vertex held as the window went (a close key mid-drag) is let go where it is: the new
            # window never sees that button's release, and the vertex followed the pointer.
            action = editor.let_go()
            if action:
                changed(action)
            mouse.hover = None
            _open_window(cv2)
            attach()
            shown = None
            continue
        try:
            mouse.fitted(cv2.getWindowImageRect(WINDOW)[2])  # (a window made smaller than the picture)
        except cv2.error:
            pass
        if key == -1:
            continue
        hover = mouse.hover or (-1000, -1000)
        if key == ord("n") and not skips.acts(now, editor.unsaved):
            # Edits not saved: a second press skips (said on the status line). This press does not count
            # as a decision: an Enter or n just after it is not taken for a held key.
            emit("skip_asked", frame=k)
            continue
        if (key in KEY_ACCEPT or key == ord("n")) and not decisions.counts(now, shown_at):
            emit("ignored", frame=k, key=key)  # held down, or pressed before the frame was seen
            ignored_at = now
            continue
        if key in KEY_ACCEPT:
            if editor.take_back_to_savable(steps):
                changed("after_enter")  # the clicks were meant for the next frame: not on this one
            editor.let_go()  # a vertex still held (Enter before the button's release): as released there
            if editor.drawing and not editor.close():
                emit("not_closed", frame=k, open=len(editor.current))  # and said on the status line
                continue
            # Show the final fill before saving, so what was saved is what was last seen. Clicks that
            # waitKey hands over now came after the Enter: not on this frame (they were counted as its
            # vertices edited).
            mouse.settle(math.inf)
            cv2.imshow(WINDOW, render(frame, editor, None, "", zoom=zoom))
            cv2.waitKey(1)
            return editor
        if key == ord("n"):
            return "skip"
        if key in KEY_QUIT:
            if quits.acts(now, editor.unsaved):
                return None
            emit("quit_asked", frame=k, by="key")  # (as n above)
            continue
        action = None
        if key in KEY_UNDO:
            action = "undo" if editor.undo() else None
        elif key == ord("r"):
            editor.restart()
            action = "restart"
        elif key == ord("c"):
            action = "clear" if editor.clear() else None
        elif key == ord("d"):
            action = "delete_shape" if editor.delete_shape_at(*hover) else None
        elif key == ord("h"):
            editor.toggle_hole()
            action = "hole_on" if editor.hole_mode else "hole_off"
            editor.version += 1  # the status line shows the mode
        elif key == ord("b"):
            show_bkg = not show_bkg
            action = "show_background" if show_bkg else "show_frame"
        if action:
            changed(action)
