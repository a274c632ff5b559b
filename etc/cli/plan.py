"""Before a run: the config it will read, validated and resolved, and the disk it will write."""

from __future__ import annotations

import click

from etc.cli.options import ExistingFile, PathArg, config_file_option
from etc.core.errors import EtcError


@click.command("config", short_help="Validate a config and print it resolved.")
@click.option("--config", "config_path", type=ExistingFile, default=None,
              help="YAML config to start from.")
@click.option("--json", "json_text", default=None,
              help="A complete or partial config as JSON (applied on top).")
@click.option("--out", type=PathArg, default=None,
              help="Write the resolved YAML here (default: print it).")
def config_cmd(config_path, json_text, out):
    """Validate a config, fill its defaults and print or write it."""
    import json

    import yaml

    from etc.core.config import load_config
    from etc.core.io import write_text

    try:
        overrides = json.loads(json_text) if json_text else None
    except json.JSONDecodeError as exc:
        raise EtcError(f"--json is not valid JSON: {exc}") from None
    if overrides is not None and not isinstance(overrides, dict):
        raise EtcError("--json must be a JSON object of config keys such as "
                       "'{\"infer\": {\"batch_size\": 2}}', "
                       f"got a {type(overrides).__name__}")
    text = yaml.safe_dump(load_config(config_path, overrides), sort_keys=False)
    if out:
        write_text(out, text)
    else:
        click.echo(text, nl=False)


@click.command("plan", short_help="Disk the long stages will write, against the free disk.")
@config_file_option
def plan_cmd(config_path):
    """What the default run will write — flow stores, predictions, checkpoints — as uncompressed
    upper bounds, against the free disk where `results` goes; precompute-flow refuses to start
    when its own estimate does not fit. Run `snakemake -n` for the jobs themselves."""
    from etc.core.config import command_config
    from etc.plan.disk import disk_plan, format_plan

    config = command_config(config_path)
    click.echo(format_plan(disk_plan(config), config["results"]))


COMMANDS = [config_cmd, plan_cmd]
