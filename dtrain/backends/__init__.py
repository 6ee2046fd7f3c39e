"""dtrain.backends: the switches torch scripts set (cudnn.benchmark, matmul.allow_tf32, ...).

CuPy 14 has no cuDNN, so the cudnn flags are accepted and recorded but change nothing; `allow_tf32` for CUDA
matmuls is torch.set_float32_matmul_precision("high") (True) or ("highest") (False), as in torch, and switches
CuPy's float32 products to or from TF32 at once."""
import types


class _Flags(types.SimpleNamespace):
    pass


cudnn = _Flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
               is_available=lambda: False, version=lambda: None)


class _Matmul:
    @property
    def allow_tf32(self):
        from .. import get_float32_matmul_precision
        return get_float32_matmul_precision() != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value):
        from .. import set_float32_matmul_precision
        set_float32_matmul_precision("high" if value else "highest")


cuda = _Flags(matmul=_Matmul(), is_built=lambda: _cuda_built())
mps = _Flags(is_available=lambda: False, is_built=lambda: False)
mkldnn = _Flags(enabled=False, is_available=lambda: False)
opt_einsum = _Flags(enabled=True, is_available=lambda: True)


def _cuda_built():
    from .. import cuda as _c
    return _c.is_available()
