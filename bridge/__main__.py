"""Command line: `python -m lgnrt.bridge --preset demo --out-dir runs/demo`; see train.main."""

import sys

from .train import main

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("training interrupted", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, the shell's status for Ctrl-C
