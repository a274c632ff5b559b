# Helpers that turn config into paths and parameters; rules never hold literals.
import shlex
import sys
from pathlib import Path

# The `etc` of the Python that runs Snakemake, so `.venv/bin/snakemake` works unactivated.
ETC = f"{shlex.quote(sys.executable)} -m etc"


def results(*parts):
    return str(Path(config["results"], *parts))


def dataset_root():
    return config["dataset"]["root"]


def dataset_ready():
    """The file that marks the dataset as present: the generator's last write, or nothing."""
    if config["dataset"]["name"] == "synthetic":
        return [str(Path(dataset_root(), "synthetic.json"))]
    return []


def synthetic_args():
    s = config["dataset"]["synthetic"]
    return (
        f"--clips {s['train_clips']} --val-clips {s['val_clips']} --frames {s['frames']} "
        f"--height {s['height']} --width {s['width']} --seed {s['seed']}"
    )


def data_splits():
    return f"{config['dataset']['train_split']},{config['dataset']['val_split']}"


def all_targets():
    return [results("data", "manifest.json")]
