"""Deployment: export to TorchScript/ONNX, segmenting any video with a trained student, and the
Python API (``api``: ``etc.load`` → a Segmenter) over a checkpoint alone."""
