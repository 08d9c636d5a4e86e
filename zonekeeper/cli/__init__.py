"""The ``zonekeeper`` command (``cli.main``), entered through ``run``."""

import sys


def run() -> None:
    """The ``zonekeeper`` command: a ``serve`` started before with the same inputs begins
    answering first (``quickstart``), then the command line is parsed as always."""
    from zonekeeper import quickstart

    quickstart.begin(sys.argv[1:])
    from zonekeeper.cli.main import main

    main()
