"""The `etc` command line: a thin click layer over plain functions that tests call directly.

This package is the only one that knows about click: the group here, each stage's commands in
their own module (etc.cli.data … etc.cli.bench), what several of them take in etc.cli.options.
Heavy libraries (torch, timm, ptlflow, cv2) are imported inside the commands so that
``etc --help`` and config errors answer at once.
"""

from __future__ import annotations

import logging
import sys

import click

from etc.cli import bench, data, deploy, evaluate, flow, infer, plan, report, train
from etc.core.errors import EtcError
from etc.core.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="etc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020).

    Each subcommand is one stage of the pipeline; `snakemake --cores all` chains them.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from etc.core.malloc import keep_freed_memory

    keep_freed_memory()  # large tensors reuse freed memory instead of page-faulting anew


for _stage in (plan, data, flow, train, infer, evaluate, deploy, report, bench):  # pipeline order
    for _command in _stage.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EtcError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
