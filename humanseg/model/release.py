"""`python -m humanseg.model.release SRC.pt DST.pt [RECIPE]`: a training checkpoint without its
optimizer state (a third of the size), as shipped in humanseg/weights/default.pt."""

import click

from humanseg.cli import CONTEXT, Command, File, as_a_tool, reports_errors


@click.command(context_settings=CONTEXT, cls=Command)
@click.argument("src", type=File())  # refuses "": read as the current folder, written as an empty name
@click.argument("dst", type=File())
@click.argument("recipe", required=False)
@reports_errors
def main(src, dst, recipe):
    """Write DST: the checkpoint SRC without its optimizer state, with RECIPE (the command that made
    it) stored in it. DST is replaced if it exists, but never a capture set's own file."""
    from humanseg import store  # (imported here, as torch is: a Ctrl-C in its OpenCV import is then one line)
    from humanseg.model.checkpoint import release_checkpoint

    store.refuse_capture_file(dst, "DST")
    store.refuse_unwritable(dst, "DST")  # (a device, as /dev/null, was replaced by the checkpoint)
    store.refuse_missing_folder(dst, "DST")  # (found after SRC was read, exit 1)
    out = release_checkpoint(src, dst, recipe or "")
    click.echo(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    as_a_tool()
    main()
