"""``etc bench``'s export section: an exported student's speed beside eager."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from etc.bench.timing import interleaved_ms
from etc.deploy.export import InferenceNet


def bench_export(rows, config: dict, sizes, device: torch.device, repeats: int) -> None:
    """``etc bench``'s export section: ms per frame of the first student exported to TorchScript
    (and through ONNX Runtime where installed, on CPU) beside eager, the models taking turns
    forward by forward (etc.bench.timing.interleaved_ms), each export traced at its size."""
    from etc.models import build_model

    torch.manual_seed(0)
    net = InferenceNet(build_model(next(iter(config["students"].values())), 19)).to(device)
    ort = importlib.util.find_spec("onnxruntime") is not None and device.type == "cpu"
    for h, w in sizes:
        example = torch.randn(1, 3, h, w, device=device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = {"eager": net, "torchscript": torch.jit.trace(net, example, check_trace=False)}  # as export_model writes it
        if ort:
            models["onnxruntime"] = _ort_session(net, example)
        ms = interleaved_ms(models, h, w, device, repeats)
        tag = f"{h}x{w}"
        for name, value in ms.items():
            rows.add("export", f"{name}_ms_{tag}", value, "ms/frame")
            if name != "eager":
                rows.add("export", f"{name}_over_eager_{tag}", value / ms["eager"], "ratio")


def _ort_session(net, example: torch.Tensor):
    import tempfile

    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="etc-export-") as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(d) / "net.onnx"
        torch.onnx.export(net, (example,), str(path), input_names=["images"], output_names=["logits"],
                          dynamo=True, verbose=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.numpy()})[0]
