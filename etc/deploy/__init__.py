"""Deployment: export to TorchScript/ONNX, segmenting any video with a trained student."""
