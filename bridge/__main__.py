"""Command line: `python -m lgnrt.bridge --preset demo --out-dir runs/demo`; see train.main."""

from .train import main

if __name__ == "__main__":
    main()
