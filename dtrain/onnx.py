"""dtrain.onnx: importable so scripts that import torch.onnx run; exporting is not implemented.

ONNX export traces a model into a graph of ONNX operators; dtrain records no such graph. To get an ONNX file,
save the state dict (dtrain.save), load it into the same model under PyTorch and export there."""

__all__ = ["export", "is_in_onnx_export", "OnnxExporterError"]


class OnnxExporterError(RuntimeError):
    pass


def export(model, args=(), f=None, *, kwargs=None, **options):
    """Raises NotImplementedError: dtrain cannot export ONNX (see the module docstring for the way round)."""
    raise NotImplementedError(
        "dtrain.onnx.export: ONNX export is not implemented in dtrain (it records no graph of the model to "
        "translate). Save the weights with torch.save(model.state_dict(), path), load them into the same model "
        "under PyTorch, and call torch.onnx.export there.")


def is_in_onnx_export() -> bool:
    return False
