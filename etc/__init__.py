"""etc: temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020).

The Python API (etc.deploy.api), loaded on first use so that ``import etc`` and the CLI's
``--help`` stay free of torch::

    import etc

    seg = etc.load("student.pt")   # an etc.Segmenter: .labels(), .scores(), .overlay(), .video()
"""

from etc.core.version import __version__

__all__ = ["Segmenter", "__version__", "load"]

_API = ("Segmenter", "load")


def __getattr__(name: str):
    if name in _API:
        from etc.deploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'etc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
