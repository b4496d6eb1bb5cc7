"""Capture tool: `python main.py -b 5 -s 2` shows the camera with palm-touch buttons Ext / Sav / Bkg."""

from __future__ import annotations

import json
import sys

import click

from humanseg.cli import CONTEXT, MAX_THREADS, Command, InFile, Number, as_a_tool, images_option, reports_errors


def _print_event(record: dict) -> None:
    print(json.dumps(record), flush=True)


@click.command(context_settings=CONTEXT, cls=Command)
@click.option("-b", "--bkg-countdown", "bkg_seconds", type=Number(min=0), default=5, show_default=True,
              help="Seconds counted down before the background is saved.")
@click.option("-s", "--sav-countdown", "sav_seconds", type=Number(min=0), default=2, show_default=True,
              help="Seconds counted down before a frame is saved.")
@click.option("--source", default="0", show_default=True,
              help="Camera index, video file, or image folder / glob pattern (read in order, looped).")
@images_option
@click.option("--set", "set_number", type=click.IntRange(min=0), default=None,
              help="Continue an existing set (its bkg.png is kept) instead of capturing a new background.")
@click.option("--no-mirror", is_flag=True, help="Show and save frames as the camera gives them (not mirrored).")
@click.option("--dwell", type=Number(min=0), default=0.3, show_default=True,
              help="Seconds a palm must stay inside a button to press it.")
@click.option("--no-pose", is_flag=True, help="No PoseNet: press buttons with the mouse or keys b / s / q.")
@click.option("--posenet-weights", type=InFile(dir_okay=False), default=None,
              help="PoseNet weights (.pth); default: $HUMANSEG_POSENET_WEIGHTS, the cache, then download.")
@click.option("--pose-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Run PoseNet on every Nth frame; 0: in a background thread on the newest frame, "
                   "as often as it keeps up (every frame on a fast machine).")
@click.option("--pose-scale", type=Number(0.05, 2.0), default=None,
              help="PoseNet input size as a fraction of the frame (default: the frame fitted to about 320x240, "
                   "0.5 for 640x480).")
@click.option("--pose-threads", type=click.IntRange(1, MAX_THREADS), default=1, show_default=True,
              help="CPU threads for PoseNet; one leaves a core for reading, drawing and showing.")
@click.option("--max-fps", type=Number(min=0), default=0, show_default=True,
              help="Pace the loop to at most this rate (0: as fast as frames come; use for files).")
@click.option("--no-model", is_flag=True,
              help="No live segmentation overlay after Bkg and no K_pred.png beside saved frames.")
@click.option("--weights", type=InFile(dir_okay=False), default=None,
              help="Segmentation checkpoint for the overlay and K_pred.png (default: $HUMANSEG_WEIGHTS, "
                   "else the shipped model).")
@click.option("--log-events", is_flag=True, help="Print one JSON line per event on stdout.")
@reports_errors
def main(bkg_seconds, sav_seconds, source, images, set_number, no_mirror, dwell, no_pose, posenet_weights,
         pose_every, pose_scale, pose_threads, max_fps, no_model, weights, log_events):
    """Capture a background, then frames of yourself, by touching the on-screen buttons.

    Bkg (or key b) saves a new set's bkg.png after the -b countdown; Sav (or s) saves the next
    K.png after the -s countdown; Ext (or q / Esc) quits. Hold a palm in a button, or click it.
    Once a background exists the model's mask is tinted over the frame, and each saved K.png gets
    the model's guess as K_pred.png (for the labeler; never K_mask.png).
    """
    given = click.get_current_context().get_parameter_source
    if no_model and weights is not None:  # left unused without a word (a missing file too)
        raise click.UsageError("use either --no-model or --weights (the model's overlay and K_pred.png), not both")
    for name in ("posenet_weights", "pose_every", "pose_scale", "pose_threads", "dwell") if no_pose else ():
        if given(name) is not click.core.ParameterSource.DEFAULT:  # (--dwell: how long a palm presses)
            raise click.UsageError(f"use either --no-pose or --{name.replace('_', '-')} (a PoseNet setting), not both")
    from humanseg.capture import open_capture

    log = _print_event if log_events else None

    def load_hooks():  # after the cheap checks: a bad --source is said before the model loads
        from humanseg.live_capture import load_overlay

        return load_overlay(weights, notify=lambda msg: click.echo(msg, err=True), log=log)

    def say_sets(result) -> None:
        """Each set this session saved into (Bkg pressed twice: two sets, both to label), else the --set
        given; frames counted in the folder now: another capture tool on the same set saves frames too.
        Said as the loop ends, before the error of a session that a failing source ended."""
        from humanseg import store
        from humanseg.errors import plural

        for number in result.sets or ([] if result.set_number is None else [result.set_number]):
            path = store.set_path(result.images_root, number)
            click.echo(f"set {number}: {plural(len(store.list_frames(path)), 'frame')} in {path}", err=True)

    open_capture(
        bkg_seconds=bkg_seconds, sav_seconds=sav_seconds, source=source, images=images,
        set_number=set_number, mirror=not no_mirror, dwell=dwell, use_pose=not no_pose,
        posenet_weights=posenet_weights, pose_every=pose_every, pose_scale=pose_scale,
        pose_threads=pose_threads, max_fps=max_fps, log=log, load_hooks=None if no_model else load_hooks,
        on_end=say_sets,
    )


if __name__ == "__main__":
    as_a_tool()
    sys.exit(main())
