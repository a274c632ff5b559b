"""The report: results table, figures, the demo video, the seed and flow studies, run comparison."""
