"""Train the siamese segmentation network: python training.py -i 1000 -b 2"""

import os

import click

from humanseg.cli import CONTEXT, MAX_THREADS, Command, Folder, Number, as_a_tool, reports_errors


def _size(ctx, param, value):
    try:
        w, h = (int(v) for v in value.lower().split("x")) if "x" in value.lower() else (int(value),) * 2
    except ValueError:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 320x240") from None
    if w < 32 or h < 32 or w % 16 or h % 16:
        raise click.BadParameter("width and height must be multiples of 16, at least 32")
    if w > MAX_SIZE or h > MAX_SIZE:  # 3840x2160 (a 4K camera's size) ran the machine out of memory
        raise click.BadParameter(f"at most {MAX_SIZE}x{MAX_SIZE}: samples are frames fitted to 320x240, "
                                 f"so a larger crop only scales them up")
    return w, h


MAX_SIZE = 1280
MAX_ITERATIONS = 10**9


@click.command(context_settings=CONTEXT, cls=Command)
@click.option("-i", "--iterations", default=1000, show_default=True, type=click.IntRange(1, MAX_ITERATIONS),
              help="Training steps in all (a resumed run continues up to this step).")
# Bounds: -b 100000 ran the machine out of memory, --workers 100000 forked until killed, --lr 1e38
# overflowed inside the optimizer, -i 10**20 (x -b over 2**63 samples) overflowed in the sampler,
# --boundary-gain 1e39 (float32's range) made the loss nan.
@click.option("-b", "--batch", default=2, show_default=True, type=click.IntRange(1, 1024),
              help="Batch size per process.")
@click.option("--images", "images", multiple=True, default=["images"], show_default=True,
              type=Folder(), help="Image root with setN/ folders; repeat for several.")
@click.option("--out", default="weights", show_default=True, type=Folder(),
              help="Folder for last.pt, best.pt, metrics.csv, training.png.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt at its step, with its optimizer state.")
@click.option("--force", is_flag=True, help="Start a new run in an OUT that holds one (replaces its checkpoints).")
@click.option("--lr", default=None, type=Number(min=0, min_open=True, max=1e6),
              help="Peak learning rate (default: 0.003 from scratch, 0.0005 when fine-tuning a model).")
@click.option("--size", default="320x240", show_default=True, callback=_size,
              help="Training sample size WIDTHxHEIGHT: crops of frames scaled as the network sees them "
                   "(fitted to 320x240, jittered; a larger crop, or a portrait frame, is scaled up to fill it).")
@click.option("--val-sets", default="0.2", show_default=True,
              help="Held-out whole sets: numbers like 3,7, a fraction like 0.2, or 'none'.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where to train (auto: a GPU when there is one).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Initial weights and every sample follow from it.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(0, 64), help="Data loader processes.")
@click.option("--init", "init", default=None,
              help="Starting weights: default (the shipped model; the default), scratch, or a checkpoint path.")
@click.option("--arch", type=click.Choice(["base", "large", "pose"]), default=None,
              help="Network when training from scratch (--init scratch; default base): base, large, or pose "
                   "(PoseNet's pretrained backbone, as the shipped model; needs PoseNet's weights, found as "
                   "main.py finds them).")
@click.option("--val-every", default=250, show_default=True, type=click.IntRange(1), help="Validate every N steps.")
@click.option("--backgrounds", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of empty-room images to composite labeled people onto; repeatable.")
@click.option("--threads", default=None, type=click.IntRange(1, MAX_THREADS), help="CPU threads for torch.")
@click.option("--stop-at", default=None, type=click.IntRange(1),
              help="Pause after this step (saves last.pt; continue later with --resume).")
# Defaults as train.BOUNDARY_WIDTH / BOUNDARY_GAIN (not imported: --help would wait for torch).
@click.option("--boundary-width", default=5, show_default=True, type=click.IntRange(0, 100),
              help="Boundary term of the loss: pixels within this many px of the true outline ...")
@click.option("--boundary-gain", default=2.0, show_default=True, type=Number(0, 1000),
              help="... weigh 1 + this much in the cross-entropy (0: no boundary term).")
@click.option("--refine-kernel", type=click.Choice(["1", "3"]), default=None,
              help="Kernel of the refine step's first convolution (default: the starting network's; "
                   "3 from scratch). 1 is cheaper per frame; a loaded 3 is converted (taps summed).")
@reports_errors
def main(iterations, batch, images, out, resume, force, lr, size, val_sets, device, seed, workers, init,
         val_every, backgrounds, threads, stop_at, arch, boundary_width, boundary_gain, refine_kernel):
    """Train the network on every labeled frame under --images, validating on held-out sets."""
    if not val_sets.strip(" ,"):  # "" or "," named no set: not taken for none
        raise click.BadParameter("give set numbers like 3,7, a fraction like 0.2, or none", param_hint="'--val-sets'")
    if init is not None and not init.strip():  # "" (an unset shell variable) was taken for the default
        raise click.BadParameter("give default, scratch or a checkpoint file", param_hint="'--init'")
    if init is not None and init.endswith(os.sep) and init.strip(os.sep):  # w.pt/ was read as w.pt
        raise click.BadParameter(f"{init} names a folder (it ends in {os.sep}); name a checkpoint file.",
                                 param_hint="'--init'")
    if resume and force:  # --force (a new run) was left unused: --resume went on with the old one
        raise click.UsageError("use either --resume (continue the run in --out) or --force (start a new one "
                               "there), not both")
    if batch == 1 and size == (32, 32):  # the deepest features are then one value per channel
        raise click.UsageError("-b 1 needs a --size larger than 32x32 (its deepest features would be 1x1, "
                               "one value per channel, which batch normalization cannot train on)")
    from humanseg.train import TrainConfig, train

    train(TrainConfig(images=list(images), iterations=iterations, batch=batch, out=out, resume=resume,
                      force=force, lr=lr, size=size, val_sets=None if val_sets.lower() == "none" else val_sets,
                      device=device, seed=seed, workers=workers, init=init, val_every=val_every,
                      backgrounds=list(backgrounds), threads=threads, stop_at=stop_at, arch=arch,
                      boundary_width=boundary_width, boundary_gain=boundary_gain,
                      refine_kernel=int(refine_kernel) if refine_kernel else None), log=click.echo)


if __name__ == "__main__":
    as_a_tool()
    main()
