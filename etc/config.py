"""Read a YAML config, fill defaults and enforce the schema the Snakefile validates against.

The schema file lives at ``workflow/schemas/config.schema.yaml``; the package carries it as
``etc/config.schema.yaml`` (a link in the source tree, a copy in a wheel) so the CLI finds it
wherever ``etc`` is installed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from etc.errors import EtcError

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


def _format_error(err, source: str) -> str:
    key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    sub = err.schema if isinstance(err.schema, dict) else {}
    allowed = ""
    if err.validator == "enum":
        allowed = f"; allowed: {', '.join(map(str, err.validator_value))}"
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted((sub.get("properties") or {}).keys())
        if known:
            allowed = f"; known keys here: {', '.join(known)}"
    elif err.validator == "pattern":
        allowed = f"; {sub.get('description', '')}".rstrip("; ")
    return f"{source}: config key '{key}': {err.message}{allowed}"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` in place, filling defaults; raise EtcError naming the first bad key."""
    import jsonschema  # noqa: F401  (import error here means a broken install, not a user error)

    validator = _validator_with_defaults()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise EtcError(_format_error(errors[0], source))
    return config


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Load ``path`` (default: the schema defaults alone), apply ``overrides``, validate."""
    import yaml

    config: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise EtcError(f"config file not found: {path}")
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise EtcError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(config, dict):
            raise EtcError(f"{path}: a config must be a mapping of keys, got {type(config).__name__}")
        source = str(path)
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config, source)


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
