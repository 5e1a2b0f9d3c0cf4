"""The ``modelwatch`` command of the wheel: the Rust CLI (dashboard included), run
through the extension, so the wheel carries one build of it."""

from __future__ import annotations

import sys

from . import _native


def main() -> None:
    sys.exit(_native.run_cli(["modelwatch", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
