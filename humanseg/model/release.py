"""`python -m humanseg.model.release SRC.pt DST.pt [RECIPE]`: a training checkpoint without its
optimizer state (a third of the size), as shipped in humanseg/weights/default.pt."""

import sys

from humanseg import store
from humanseg.errors import StoreError, WeightsError
from humanseg.model.checkpoint import release_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m humanseg.model.release SRC.pt DST.pt [RECIPE]", file=sys.stderr)
        return 2
    try:
        store.refuse_capture_file(argv[1], "DST")  # replaced if it exists, but never a set's bkg.png / K.png
        out = release_checkpoint(*argv)
    except (WeightsError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
