"""Label person masks by drawing polygons: `python label_images.py -s 3`."""

import click

from humanseg.cli import CONTEXT, Command, InFile, Number, as_a_tool, images_option, reports_errors


@click.command(context_settings=CONTEXT, cls=Command)
@click.option("-s", "--set", "set_number", type=click.IntRange(min=0), required=True, metavar="N",
              help="Set to label (images/setN).")
@images_option
@click.option("--redo", type=int, metavar="K", default=None,
              help="Re-open frame K for editing (its K.json polygons, else its mask's outline).")
@click.option("--all", "all_frames", is_flag=True, help="Open every frame, labeled ones too.")
@click.option("--no-guess", is_flag=True,
              help="Start unlabeled frames empty instead of from K_pred.png / the model / differencing.")
@click.option("--weights", type=InFile(dir_okay=False), default=None,
              help="Model checkpoint for the starting guess, of every frame (default: the capture tool's "
                   "K_pred.png where there is one, else $HUMANSEG_WEIGHTS or the shipped model).")
@click.option("--zoom", type=Number(0.1, 4.0), default=None, metavar="F",
              help="Show frames at this scale (default: 1; less for frames larger than 1280x720, so the "
                   "window fits a laptop's screen; 2 to 4 for frames of 320x240 or less, the largest "
                   "whole factor that stays within 640x480, so they can be drawn on). Masks are saved at "
                   "the frame's own size.")
@click.option("--log-events", is_flag=True, help="Print one JSON line per event on stdout (for tests).")
@reports_errors
def main(set_number, images, redo, all_frames, no_guess, weights, zoom, log_events):
    """Draw person polygons on the unlabeled frames of a set; saves K_mask.png and K.json."""
    if redo is not None and all_frames:
        raise click.UsageError("use either --redo K or --all, not both")
    if no_guess and weights is not None:
        raise click.UsageError("use either --no-guess or --weights (the model's guess), not both")
    from humanseg.labeling.app import label_set

    label_set(images, set_number, redo=redo, all_frames=all_frames, use_guess=not no_guess,
              weights=weights, log_events=log_events, zoom=zoom)


if __name__ == "__main__":
    as_a_tool()
    main()
