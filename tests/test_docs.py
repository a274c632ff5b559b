"""The documentation that can be checked is: the CLI reference is the commands' own help, every
relative link in the Markdown points at a file, and CITATION.cff is well-formed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click
import yaml

from etc.cli import cli

REPO = Path(__file__).resolve().parent.parent


def _cli_docs():
    spec = importlib.util.spec_from_file_location("cli_docs", REPO / "scripts" / "cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_md_is_the_commands_help():
    page = _cli_docs().render()
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == page, (
        "docs/cli.md is stale: run `PYTHONPATH=. python scripts/cli_docs.py` and commit it")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scheduler_md_shows_what_each_job_asks_for(monkeypatch):
    monkeypatch.chdir(REPO)
    jobs = _script("job_requests")
    text = (REPO / "docs" / "scheduler.md").read_text(encoding="utf-8")
    assert jobs.page(text, jobs.render()) == text, (
        "docs/scheduler.md's job table is stale: run `PYTHONPATH=. python scripts/job_requests.py`")
    assert "| `train_teacher` |" in text and "| `keyframe_latency` |" in text


def test_cli_md_covers_every_command_and_option():
    page = _cli_docs().render()
    for name, command in cli.commands.items():
        section = page.split(f"## `etc {name}`\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            names = [param.metavar or param.name.upper()] if isinstance(param, click.Argument) else param.opts
            for opt in names:
                assert opt in section, f"{opt} of etc {name} missing from docs/cli.md"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_resolve():
    pages = [REPO / "README.md", REPO / "results" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} → {target}")
    assert not broken, broken


def test_citation_cff_is_well_formed():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"].startswith("1.2")
    for key in ("message", "title", "authors", "license", "version"):
        assert cff[key], key
    version = re.search(r'^__version__ = "([^"]+)"', (REPO / "etc/core/version.py").read_text(encoding="utf-8"), re.M)
    assert cff["version"] == version.group(1)
    assert cff["license"] == "MIT" and "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8")
    paper = cff["preferred-citation"]
    assert paper["type"] == "conference-paper" and paper["year"] == 2020
    assert [a["family-names"] for a in paper["authors"]] == ["Liu", "Shen", "Yu", "Wang"]
    assert all(a.get("given-names") for a in [*cff["authors"], *paper["authors"]] if "family-names" in a)
