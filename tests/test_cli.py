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


def test_every_stage_reads_config_plus_options(tmp_path):
    """make-synthetic and check-data take --config like the rest; an option overrides its key,
    and a bad option value is reported under the option's name."""
    import json

    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"root": str(tmp_path / "syn"), "synthetic": {
        "train_clips": 1, "val_clips": 1, "frames": 3, "height": 32, "width": 48, "seed": 1}}}))
    run = lambda *a: subprocess.run([sys.executable, "-m", "etc", *a], capture_output=True, text=True)  # noqa: E731
    res = run("make-synthetic", "--config", str(cfg), "--frames", "4")
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "syn" / "synthetic.json").read_text())
    assert json.dumps(meta).count('"frames": 4') >= 1 and '"height": 32' in json.dumps(meta)
    res = run("check-data", "--config", str(cfg), "--manifest", str(tmp_path / "m.json"))
    assert res.returncode == 0, res.stderr
    splits = json.loads((tmp_path / "m.json").read_text())
    assert "train" in json.dumps(splits) and "val" in json.dumps(splits)
    res = run("precompute-flow", "--config", str(cfg), "--split", "val", "--out", str(tmp_path / "f.h5"), "--window", "0")
    assert res.returncode == 2 and res.stderr.startswith("error: --window: 0 is not allowed"), res.stderr
    res = run("make-synthetic", "--config", str(cfg), "--height", "4")
    assert res.returncode == 2 and "--height: 4 is less than the minimum of 32" in res.stderr


def test_impossible_output_paths_are_one_line_errors(tmp_path):
    """A file where a folder should be, or a folder given as the output: exit 2 naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = lambda *a: subprocess.run([sys.executable, "-m", "etc", *a], capture_output=True, text=True, cwd=tmp_path)  # noqa: E731
    for args in (["config", "--out", str(blocker / "c.yaml")], ["config", "--out", str(tmp_path)],
                 ["make-synthetic", "--out", str(tmp_path / "syn"), "--clips", "1", "--val-clips", "1",
                  "--frames", "2", "--height", "32", "--width", "32"]):
        res = run(*args)
        if args[0] == "make-synthetic":
            assert res.returncode == 0, res.stderr
            for bad in (["check-data", "--root", str(tmp_path / "syn"), "--manifest", str(blocker / "m.json")],
                        ["precompute-flow", "--root", str(tmp_path / "syn"), "--split", "val",
                         "--out", str(blocker / "f.h5")]):
                res = run(*bad)
                assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
                assert res.stderr.startswith(f"error: cannot write {blocker}/"), res.stderr
            continue
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.startswith("error: cannot write"), res.stderr


def test_each_config_option_names_a_schema_key_and_overrides_it(tmp_path, monkeypatch):
    """The option ↔ key pairs are declared once (etc.cli.options.config_option): every key is in
    the schema, the help shows it, and a value given reaches the config under that key."""
    from etc.cli.options import config_keys, given_options
    from etc.core.config import _schema_at, command_config

    pairs = {(name, opt): key for name, cmd in cli.commands.items() for opt, key in config_keys(cmd).items()}
    assert ("infer", "--batch-size") in pairs and ("demo-video", "--fps") in pairs and len(pairs) >= 25
    for (name, opt), key in pairs.items():
        for k in {key.format(which="teacher"), key.format(which="student")}:
            assert _schema_at(k.split(".")), (name, opt, k)
        assert f"[{key}]" in CliRunner().invoke(cli, [name, "--help"]).output.replace("\n", " ").replace(
            "  ", " ") or "{" in key, (name, opt)

    seen = {}

    @cli.command("probe-options", hidden=True)
    @click_option_like_infer()
    def probe(**_options):
        seen.update(command_config(None, given_options()))

    monkeypatch.chdir(tmp_path)  # no ./config.yaml: the schema's defaults
    try:
        assert CliRunner().invoke(cli, ["probe-options", "--batch-size", "3", "--no-flip"]).exit_code == 0
        assert seen["infer"]["batch_size"] == 3 and seen["infer"]["flip"] is False
        bad = CliRunner().invoke(cli, ["probe-options", "--batch-size", "0"], standalone_mode=False)
        assert "--batch-size: 0 is less than the minimum of 1" in str(bad.exception)
    finally:
        del cli.commands["probe-options"]


def click_option_like_infer():
    from etc.cli.options import config_option

    def decorate(f):
        f = config_option("--batch-size", key="infer.batch_size", type=int, help="Frames per forward pass")(f)
        return config_option("--flip/--no-flip", key="infer.flip", help="Flip")(f)

    return decorate
