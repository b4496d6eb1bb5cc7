"""`python -m humanseg export --onnx model.onnx`: the network as ONNX, frame + background in, probability out."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import click

from humanseg import store
from humanseg.cli import Command, File, InFile, reports_errors
from humanseg.errors import AlreadyExists, HumansegError
from humanseg.signals import signals_held


def probability_module(model):
    """Wrap the network: (frame, background) (N,3,H,W) float BGR 0..1 -> person probability (N,1,H,W).

    The inputs are padded here to the network's stride with index arithmetic the ONNX graph keeps
    symbolic (the network's own padding decides in Python, which a trace would freeze to one size).
    """
    import torch

    class ProbabilityNet(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net.eval()
            self.stride = net.stride

        def _pad(self, x, h, w, hp, wp):
            # Replicate padding as a gather: rows/cols past the edge repeat the last one.
            rows = torch.clamp(torch.arange(hp, device=x.device), max=h - 1)
            cols = torch.clamp(torch.arange(wp, device=x.device), max=w - 1)
            return x.index_select(2, rows).index_select(3, cols)

        def forward(self, frame, background):
            h, w = frame.shape[2], frame.shape[3]
            s = self.stride
            hp = (h + s - 1) // s * s
            wp = (w + s - 1) // s * s
            f = self._pad(frame, h, w, hp, wp)
            b = self._pad(background, h, w, hp, wp)
            logits = self.net(f, b)
            return torch.sigmoid(logits[:, :, :h, :w])

    return ProbabilityNet(model)


def export_onnx(weights, path: str | os.PathLike, opset: int = 17, overwrite: bool = True) -> Path:
    """Write the checkpoint's network as ONNX (inputs "frame", "background"; output "probability";
    batch, height and width dynamic) atomically to path; returns the path. Without overwrite, a file
    that appeared at path meanwhile (another export to the same name) is kept, and HumansegError says so."""
    import torch

    from humanseg.model import load_model, resolve_weights

    model, _ = load_model(resolve_weights(weights))
    wrapped = probability_module(model)
    w, h = 320, 240  # a sample for tracing (height and width are dynamic)
    frame = torch.rand(1, 3, h, w)
    bkg = torch.rand(1, 3, h, w)
    path = Path(path)
    store.refuse_missing_folder(path, "--onnx")
    axes = {0: "batch", 2: "height", 3: "width"}
    tmp = None
    try:
        with signals_held():  # (a Ctrl-C between the file's making and tmp naming it left the file)
            tmp = store.claim_temporary(path)  # its own new file: a NAME.tmp of the user's is never touched
        with torch.no_grad(), warnings.catch_warnings():
            # The network's shape checks are traced as constants; the wrapper's padding keeps sizes free.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # Into memory, then written by Python: the exporter's C++ side could not take a file name
            # that is not valid UTF-8 (and said so with the whole traced graph, 9,700 lines).
            buffer = io.BytesIO()
            torch.onnx.export(
                wrapped, (frame, bkg), buffer, input_names=["frame", "background"],
                output_names=["probability"], opset_version=opset, do_constant_folding=True,
                dynamic_axes={"frame": axes, "background": axes, "probability": axes}, dynamo=False,
            )
        store.write_temporary(tmp, _declare_one_channel(buffer.getvalue()), path)
        store.write_in_place(tmp, path, overwrite=overwrite)  # (os.replace took a file that appeared meanwhile)
    except AlreadyExists:
        store.remove_temporary(tmp)
        raise HumansegError(f"--onnx {path} appeared during the export (another export to the same name?) and "
                            f"is left as it is; pass --force to overwrite it", exit_code=1) from None
    except BaseException as exc:  # Ctrl-C or SIGTERM mid-export leaves no temporary file either
        if tmp is not None:
            store.remove_temporary(tmp)
        if not isinstance(exc, Exception) or isinstance(exc, HumansegError):
            raise
        if isinstance(exc, OSError):  # a full disk names no file: say which one
            raise HumansegError(f"--onnx {path}: {exc.strerror or exc}", exit_code=1) from None
        first = str(exc).strip().splitlines() or [type(exc).__name__]  # (one line, not a dumped graph)
        raise HumansegError(f"ONNX export failed: {first[0]}", exit_code=1) from None
    return path


def _declare_one_channel(model: bytes) -> bytes:
    """The exported graph names its output's channel count symbolically (the tracer does not carry
    the 1 through the padding and cropping); declare it, so a reader of the model sees N x 1 x H x W."""
    import onnx

    graph = onnx.load_model_from_string(model)
    dim = graph.graph.output[0].type.tensor_type.shape.dim[1]
    if dim.HasField("dim_value"):
        return model
    dim.dim_value = 1
    return graph.SerializeToString()


@click.command("export", cls=Command)
@click.option("--onnx", "onnx_path", required=True, type=File(),
              help="Where to write the ONNX model.")
@click.option("--weights", type=InFile(dir_okay=False),
              help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--opset", type=click.IntRange(13, 20), default=17, show_default=True,
              help="ONNX opset version (13-20: what this PyTorch's exporter writes).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@reports_errors
def export_command(onnx_path, weights, opset, force):
    """Export the network: inputs frame and background (N,3,H,W float BGR in 0..1, any H and W),
    output the person probability (N,1,H,W).

    The shipped Segmenter runs it on frames fitted to 320x240 (humanseg.model.working_size; resized
    with INTER_AREA), cleans up the logits log(p / (1 - p)) clipped to +-30, and resizes those back;
    do the same for the same masks (see the README's "ONNX export").
    """
    store.refuse_capture_file(onnx_path, "--onnx")  # e.g. images/set3/0.png, --force or not
    from humanseg.model.checkpoint import resolve_weights

    try:
        source = resolve_weights(weights)
    except HumansegError:
        source = None  # said by export_onnx, as every command says it
    if source is not None and Path(onnx_path).resolve() == source.resolve():  # --force or not
        raise HumansegError(f"--onnx {onnx_path} is the checkpoint being exported; write it to another file")
    if os.path.lexists(onnx_path) and not force:  # a link pointing nowhere too
        raise HumansegError(f"--onnx {onnx_path} already exists (pass --force to overwrite)")
    store.refuse_missing_folder(onnx_path, "--onnx")  # found now, not after the model loaded
    store.refuse_unwritable(onnx_path, "--onnx")
    out = export_onnx(weights, onnx_path, opset, overwrite=force)
    click.echo(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
