"""What more than one command takes: the parameter types, the options declared once, and the
option ↔ config key pairing (:func:`config_option`) that every stage's command reads through."""

from __future__ import annotations

from pathlib import Path

import click

from etc.data.sets import dataset_names

DATASETS = list(dataset_names())  # the registry (etc.data.sets) is the only list of names
PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)
ExistingDir = click.Path(exists=True, file_okay=False, path_type=Path)


def config_option(*decls: str, key: str, shown: str | None = None, **kwargs):
    """A click option that overrides the dotted config key ``key`` — the one declaration of
    the pair: the help text ends in ``[key]`` (or ``[shown]``), :func:`given_options` collects
    the values given, and a bad value is reported under the option's name. ``key`` may name
    ``{fields}`` that the command fills (train's ``--seed``: ``train.{which}.seed``)."""
    help_text = kwargs.pop("help", "")
    kwargs.setdefault("default", None)

    def decorate(f):
        text = f"{help_text} [{shown or key}].".replace(". [", " [")
        f = click.option(*decls, help=text, **kwargs)(f)
        f.__click_params__[-1].config_key = key
        return f

    return decorate


def config_keys(command: click.Command) -> dict[str, str]:
    """Option → dotted config key of every :func:`config_option` of ``command``."""
    return {p.opts[0]: p.config_key for p in command.params if getattr(p, "config_key", None)}


def given_options(**fields: str) -> dict[str, tuple[str, object]]:
    """The current command's config options as etc.core.config.command_config takes them: dotted
    key → (option, value or None when not given)."""
    ctx = click.get_current_context()
    return {p.config_key.format(**fields): (p.opts[0], ctx.params[p.name])
            for p in ctx.command.params if getattr(p, "config_key", None)}


config_file_option = click.option(
    "--config", "config_path", type=ExistingFile, default=None,
    help="Pipeline config, validated against workflow/schemas/config.schema.yaml "
         "[default: ./config.yaml when present, else the schema's defaults]. "
         "Options below override its keys.")

model_option = click.option("--model", "model_ckpt", required=True, type=ExistingFile,
                            help="Checkpoint written by `etc train`.")

dataset_option = config_option("--dataset", key="dataset.name", type=click.Choice(DATASETS),
                               help="Which loader reads the root")
root_option = config_option("--root", key="dataset.root", type=click.Path(),
                            help="Dataset root folder")


def device_option(scope: str = ""):
    """``--device``: where torch runs (etc.core.device.pick_device); ``scope`` narrows the help
    where only part of the command runs there."""
    return click.option("--device", default=None,
                        help=f"cpu, cuda, cuda:1 …{scope} (default: CUDA when present).")


def batch_size_option(**kwargs):
    """``--batch-size`` of the network's forward passes [infer.batch_size]."""
    return config_option("--batch-size", key="infer.batch_size", help="Frames per forward pass",
                         **kwargs)


def frame_size(height: int | None, width: int | None) -> tuple[int, int] | None:
    """``--height`` and ``--width`` as one size, None when neither is given."""
    if (height is None) != (width is None):
        raise click.UsageError("give both --height and --width, or neither")
    return (height, width) if height else None
