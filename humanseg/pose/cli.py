"""`python -m humanseg pose IMAGE...`: show what PoseNet sees (drawn images or JSON lines)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from humanseg import store
from humanseg.cli import Command, Folder, InFile, Number, reports_errors
from humanseg.errors import HumansegError
from humanseg.pose import MODEL_IDS


def _output_names(images: list[Path]) -> list[str]:
    """`<stem>_pose.png`, prefixed with the parent folder's name where two inputs share a stem."""
    stems = [p.stem for p in images]
    def folder(p: Path) -> str:  # "" (the current folder) and ".." by their names
        return p.parent.name if p.parent.name not in ("", "..") else p.resolve().parent.name

    return [f"{folder(p)}_{p.stem}_pose.png" if stems.count(p.stem) > 1 else f"{p.stem}_pose.png"
            for p in images]


def _read(path: Path):
    if not path.is_file():  # (click's "does not exist" named a link to nothing, or a symlink loop, so)
        raise HumansegError(f"image {store.not_a_file(path)}: {path}")
    frame = store.decode_file(path)
    if frame is None:
        raise HumansegError(f"{path}: not a readable image")
    return frame


@click.command("pose", cls=Command)
@click.argument("images", nargs=-1, required=True, type=InFile(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=Folder(path_type=Path), default=None,
              help="Write <image>_pose.png with skeleton and palms into this folder.")
@click.option("--force", "--overwrite", "overwrite", is_flag=True, help="Replace existing files in --out.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON line per image: {"image", "keypoints": {name: [x, y, score]}, "palms": [[x, y]]}.')
@click.option("--posenet-weights", type=InFile(dir_okay=False), default=None,
              help="PoseNet state dict (.pth); default: $HUMANSEG_POSENET_WEIGHTS, the cache, then download.")
@click.option("--pose-scale", type=Number(0.05, 2.0), default=None,
              help="Network input size as a fraction of the image size  [default: the image fitted to "
                   "about 320x240, 0.5 for 640x480]")
@click.option("--model-id", type=click.Choice([str(m) for m in MODEL_IDS]), default="50", show_default=True,
              help="MobileNetV1 depth multiplier x 100 (101 is Google's 1.01 checkpoint).")
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True,
              help="Network output stride (8 is finer and slower).")
@click.option("--max-poses", type=click.IntRange(1, 20), default=1, show_default=True,
              help="1 uses the fast single-person decoder; more uses multi-person decoding.")
@reports_errors
def pose_command(images, out_dir, overwrite, as_json, posenet_weights, pose_scale, model_id, output_stride,
                 max_poses):
    """Run PoseNet on IMAGE files and draw the skeleton and palm centres (or print them as JSON)."""
    from humanseg.errors import WeightsError, WeightsNotFound
    from humanseg.pose.draw import draw_poses
    from humanseg.pose.estimator import PoseEstimator
    from humanseg.pose.weights import WEIGHTS_ENV, weights_hint

    images = list(images)
    # Every image is decoded once before anything is written, so a bad one in a batch stops the run
    # before the others are drawn (a rerun after fixing it would otherwise need --force).
    for path in images:
        _read(path)
    names = _output_names(images)
    if out_dir is not None:
        store.refuse_new_set_folder(out_dir, "--out")  # one every tool would take for a capture set
        if store.is_capture_folder(out_dir):  # drawings among a set's frames pass for frames elsewhere
            raise HumansegError(f"--out {out_dir} is a capture set folder (it holds bkg.png or K.png frames): "
                                f"choose another folder for the drawings")
        store.refuse_unwritable(out_dir, "--out", folder=True)  # found now, not at the first drawing
        first: dict[str, Path] = {}
        inputs: dict[Path, Path] = {}  # resolved -> as given
        for path in images:  # twice: "a.png and a.png would both write o/_a_pose.png"
            if Path(path).resolve() in inputs:
                raise HumansegError(f"{inputs[Path(path).resolve()]} and {path} are the same image; give it once")
            inputs[Path(path).resolve()] = path
        for path, name in zip(images, names):
            if len(os.fsencode(name)) > store.NAME_MAX:  # found at its write, after the weights loaded
                raise HumansegError(f"{path}: its drawing's name {name[:40]}... is longer than a file name "
                                    f"may be ({store.NAME_MAX} bytes); rename the image")
            if (out_dir / name).is_dir():  # --force or not: found at its write, after the drawings before it
                raise HumansegError(f"{path} would be drawn to {out_dir / name}, which is a folder; move it away "
                                    f"or choose another --out")
            if (out_dir / name).resolve() in inputs:  # --force or not: it would be drawn over, then read
                raise HumansegError(f"{path} would be drawn to {out_dir / name}, which is one of the images "
                                    f"given; choose another --out")
            if name in first:  # e.g. a/set1/0.png and b/set1/0.png: the second would replace the first
                raise HumansegError(f"{first[name]} and {path} would both write {out_dir / name}; "
                                    f"draw them into separate --out folders")
            first[name] = path
        if not overwrite:
            taken = [out_dir / n for n in names if os.path.lexists(out_dir / n)]
            if taken:
                raise HumansegError(f"--out {out_dir}: {taken[0].name} exists (pass --force to replace it)")
    try:
        estimator = PoseEstimator.load(weights=posenet_weights, model_id=int(model_id),
                                       output_stride=int(output_stride), scale=pose_scale, max_poses=max_poses)
    except WeightsError as exc:  # as main.py says it: a file $HUMANSEG_POSENET_WEIGHTS named is that to mend
        if isinstance(exc, WeightsNotFound) or not (posenet_weights is None and os.environ.get(WEIGHTS_ENV)):
            raise
        raise HumansegError(f"{exc}; {weights_hint(None)}", exit_code=exc.exit_code) from None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)  # only once the weights loaded: no empty folder on an error
    for path, name in zip(images, names):
        frame = _read(path)
        h, w = frame.shape[:2]
        poses = estimator.estimate(frame)
        palms = estimator.palms_from_poses(poses, w, h)
        if out_dir is not None:  # (one that appeared since the check: said as evaluate says it, exit 1)
            with store.appeared_meanwhile():
                store.write_image(out_dir / name, draw_poses(frame, poses, palms), overwrite=overwrite)
        if as_json:
            keypoints = {} if not poses else {
                k: [round(kp.x, 1), round(kp.y, 1), round(kp.score, 3)] for k, kp in poses[0].keypoints.items()}
            click.echo(json.dumps({"image": str(path), "keypoints": keypoints,
                                   "palms": [[round(p.x, 1), round(p.y, 1)] for p in palms]}))
        else:
            summary = ", ".join(f"{p.side} palm at ({p.x:.0f}, {p.y:.0f})" for p in palms) or "no palm"
            score = f"pose score {poses[0].score:.2f}" if poses else "no pose"
            drawn = "" if out_dir is None else f", drawn to {out_dir / name}"
            click.echo(f"{path}: {score}, {summary}{drawn}")
