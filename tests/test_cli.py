"""The CLI answers at once, lists every subcommand, and turns user errors into one line."""

import subprocess
import sys

from click.testing import CliRunner

from etc.cli import cli


def test_every_subcommand_has_help():
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    names = sorted(cli.commands)
    assert {"make-synthetic", "check-data", "train", "infer", "evaluate", "report", "demo-video", "config"} <= set(names)
    for name in names:
        res = runner.invoke(cli, [name, "--help"])
        assert res.exit_code == 0, name
        assert "Usage: cli " + name in res.output or f"{name} [OPTIONS]" in res.output
        assert name in top.output


def test_help_does_not_import_torch():
    code = "import sys; from etc.cli import cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_config_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("flow:\n  estimator: farneback\n")
    res = subprocess.run([sys.executable, "-m", "etc", "config", "--config", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "flow.estimator" in res.stderr and "farneback" in res.stderr
