"""etc: temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020)."""

from etc.core.version import __version__

__all__ = ["__version__"]
