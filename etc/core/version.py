"""The package version: declared here once, read by pyproject.toml, `etc --version` and etc.__version__."""

__version__ = "0.1.0"
