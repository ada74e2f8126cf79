"""Entry point for `python -m app`, the console script and the frozen binary."""

import multiprocessing
import sys


def run() -> None:
    multiprocessing.freeze_support()  # first: a frozen child process must not start a gateway
    from app.runtime.stdio import harden

    harden()
    from app.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
