"""Read a YAML config, fill defaults and enforce the schema the Snakefile validates against.

The schema file lives at ``workflow/schemas/config.schema.yaml``; the package carries it as
``etc/config.schema.yaml`` (a link in the source tree, a copy in a wheel) so the CLI finds it
wherever ``etc`` is installed.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any

from etc.core.errors import EtcError

# where the folder dataset finds ROOT/classes.yaml, in this process and its children
FOLDER_ROOT_ENV = "ETC_FOLDER_ROOT"
SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def load_schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _validator_with_defaults():
    """A Draft 2020-12 validator that also inserts defaults (as Snakemake's ``validate`` does)."""
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
                elif "$ref" in sub:
                    ref = validator.resolver.resolve(sub["$ref"])[1] if hasattr(validator, "resolver") else None
                    if ref and "default" in ref:
                        instance.setdefault(name, copy.deepcopy(ref["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})


def _format_error(err, source: str, flags: dict[str, str] | None = None) -> str:
    key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    sub = err.schema if isinstance(err.schema, dict) else {}
    allowed = ""
    message = err.message
    if err.validator == "not":  # jsonschema would print the negated sub-schema
        message = f"{err.instance!r} is not allowed"
    given = next((k for k in flags or {} if key == k or key.startswith(k + ".")), None)
    if given:
        about = _schema_at(given.split(".")).get("description")
        return f"{flags[given]}: {message}" + (f" ({about})" if about else "")
    if err.validator == "enum":
        allowed = f"; allowed: {', '.join(map(str, err.validator_value))}"
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted((sub.get("properties") or {}).keys())
        if known:
            allowed = f"; known keys here: {', '.join(known)}"
    elif err.validator == "pattern":
        allowed = f"; {sub.get('description', '')}".rstrip("; ")
    return f"{source}: config key '{key}': {message}{allowed}"


def _schema_at(path: list[str]) -> dict:
    """The schema node of a dotted config key (``$ref`` followed), or {} where there is none."""
    schema = root = load_schema()
    for part in path:
        if "$ref" in schema:
            schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
        props = schema.get("properties") or {}
        schema = props.get(part) or (schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None) or {}
    if "$ref" in schema:
        schema = {**root["definitions"][schema["$ref"].rsplit("/", 1)[-1]], **schema}
    return schema


def schema_defaults(section: str) -> dict:
    """The defaults the schema gives one section (for callers that build a section by hand)."""
    return validate_config({})[section]


def model_defaults() -> dict:
    """The defaults of a model entry (``definitions.model``): what a stored entry that predates a
    key is completed with, so that no module repeats them."""
    import copy as _copy

    schema = load_schema()
    out = {}
    for name, sub in schema["definitions"]["model"]["properties"].items():
        if "default" in sub:
            out[name] = _copy.deepcopy(sub["default"])
    return out


def validate_config(config: dict, source: str = "config", flags: dict[str, str] | None = None) -> dict:
    """Validate ``config`` in place, filling defaults; raise EtcError naming the first bad key
    (or the command-line option in ``flags`` — dotted key → option — that set it)."""
    import jsonschema  # noqa: F401  (import error here means a broken install, not a user error)

    for key, value in _non_finite(config):  # YAML's .nan / .inf pass every numeric bound
        given = next((k for k in flags or {} if key == k or key.startswith(k + ".")), None)
        where = flags[given] if given else f"{source}: config key '{key}'"
        raise EtcError(f"{where}: {value} is not a finite number")
    validator = _validator_with_defaults()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise EtcError(_format_error(errors[0], source, flags))
    _check_references(config, source)
    _check_across_keys(config, source)
    return config


def _check_across_keys(config: dict, source: str) -> None:
    """What the schema cannot say about two keys together."""
    for which, schedule in (config.get("train") or {}).items():
        batch, gpus = schedule["batch_size"], schedule["gpus"]
        if batch % gpus:
            raise EtcError(f"{source}: config key 'train.{which}.batch_size': {batch} is not divisible by "
                           f"train.{which}.gpus {gpus} (the global batch is split evenly across the processes); "
                           f"give a multiple of {gpus}")


def _non_finite(value, key: str = ""):
    """(dotted key, value) of every NaN or infinite float in a config."""
    if isinstance(value, float) and not math.isfinite(value):
        yield key or "<top level>", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, f"{key}.{i}")


def _check_references(config: dict, source: str) -> None:
    """Names that must name something elsewhere in the config (the schema cannot say so)."""
    study = config.get("flow_study") or {}  # its ablations default to names a config may not have
    student = study.get("student")
    if student is not None and student not in config["students"]:
        raise EtcError(f"{source}: config key 'flow_study.student': '{student}' is not a student; "
                       f"known: {', '.join(config['students'])}")


def check_workflow_config(config: dict, files: list) -> dict:
    """The Snakefile's check of the config Snakemake loaded from ``files``: each file re-read
    for what Snakemake's loader lets through (a key given twice), then the schema, defaults
    filled in place. Raises EtcError."""
    for path in files:
        read_yaml_mapping(path)
    return validate_config(config, ", ".join(map(str, files)))


DEFAULT_CONFIG = Path("config.yaml")


def command_config(path: str | Path | None, options: dict[str, tuple[str, Any]] | None = None) -> dict:
    """The one way every subcommand builds its config.

    ``path`` (or ./config.yaml when there is one, else the schema defaults alone) with the
    command-line options the user gave on top: ``options`` maps a dotted config key to
    ``(option name, value)``; a value of None means "not given". A bad value is reported under
    the option's name, not the config key's.
    """
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    overrides: dict[str, Any] = {}
    flags = {}
    for key, (flag, value) in (options or {}).items():
        if value is None:
            continue
        flags[key] = flag
        node = overrides
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    from etc.core.reads import record_reads

    return record_reads(load_config(path, overrides, flags=flags))


def load_config(path: str | Path | None = None, overrides: dict | None = None, *,
                flags: dict[str, str] | None = None) -> dict:
    """Load ``path`` (default: the schema defaults alone), apply ``overrides``, validate."""

    config: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise EtcError(f"config file not found: {path}")
        config = read_yaml_mapping(path) or {}
        source = str(path)
    if overrides:
        if not isinstance(overrides, dict):
            raise EtcError(f"overrides must be a mapping of config keys, got {type(overrides).__name__}")
        config = deep_merge(config, overrides)
    config = validate_config(config, source, flags)
    if config["dataset"]["name"] == "folder":  # its classes are in the tree: ROOT/classes.yaml
        os.environ[FOLDER_ROOT_ENV] = str(Path(config["dataset"]["root"]).resolve())
    return config


def read_yaml_mapping(path: str | Path) -> dict | None:
    """A YAML file that must hold a mapping (or nothing): text, valid YAML, no key given twice
    (YAML's last-one-wins would drop the first silently)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EtcError(f"{path}: not a text file (not UTF-8); a config is a YAML text file") from None
    except OSError as exc:
        raise EtcError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EtcError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise EtcError(f"{path}: a config must be a mapping of keys, got a {type(data).__name__}")
    return data


@functools.cache
def _unique_key_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    mark = key_node.start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' is given twice (line {mark.line + 1}); keep one", mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader



def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolved_yaml(config: dict) -> str:
    """The config validated and completed with the schema's defaults, as YAML (key order kept)."""
    import yaml

    return yaml.safe_dump(load_config(None, config), sort_keys=False)


def write_resolved(config: dict, path: str | Path) -> bool:
    """Write :func:`resolved_yaml` to ``path`` unless the file already holds it; whether it wrote."""
    from etc.core.io import write_text

    text = resolved_yaml(config)
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    write_text(path, text)
    return True
