"""Why a safe ``torch.load`` refused a file, in words a user can act on."""

from __future__ import annotations


def load_refusal(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words — never torch's own
    advice to retry with ``weights_only=False``, which would run whatever code the file holds."""
    if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
        return "it holds Python objects besides tensors, which a safe load refuses"
    return _first_sentence(exc)


def _first_sentence(exc: Exception) -> str:
    """The exception's type and the first sentence of its message: torch's are paragraphs."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    sentence = text.split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {sentence}" if sentence else type(exc).__name__
