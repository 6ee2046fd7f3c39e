"""Every public nn class dtrain has lives at torch's module path (`torch.nn.modules.activation.MultiheadAttention`
is `dtrain.nn.modules.activation.MultiheadAttention`): scripts import these paths and pickles name them."""
import importlib
import inspect
import pkgutil

import pytest
import torch.nn

# the torch namespaces whose classes scripts reach; each is walked with its submodules
ROOTS = ["torch.nn", "torch.nn.modules", "torch.nn.parallel", "torch.nn.utils", "torch.nn.parameter",
         "torch.nn.init", "torch.nn.functional"]


def _torch_namespaces():
    names = set(ROOTS)
    for root in ("torch.nn.modules", "torch.nn.utils", "torch.nn.parallel"):
        pkg = importlib.import_module(root)
        names.update(f"{root}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    return sorted(names)


def _pairs():
    """(torch class, dtrain class) for each public class torch shows in one of its namespaces and dtrain has
    under the same name in the same namespace."""
    seen = {}
    for ns in _torch_namespaces():
        try:
            tmod = importlib.import_module(ns)
            dmod = importlib.import_module("dtrain" + ns[len("torch"):])
        except ImportError:
            continue  # a namespace dtrain lacks as a whole is another test's business
        for name, tcls in vars(tmod).items():
            if name.startswith("_") or not inspect.isclass(tcls) or not tcls.__module__.startswith("torch.nn"):
                continue
            dcls = getattr(dmod, name, None)
            if inspect.isclass(dcls) and dcls.__module__.startswith("dtrain"):
                seen[(tcls.__module__, tcls.__qualname__)] = (tcls, dcls)
    return sorted(seen.values(), key=lambda p: (p[0].__module__, p[0].__qualname__))


PAIRS = _pairs()


def test_the_walk_covers_the_layers_scripts_use():
    names = {t.__qualname__ for t, _ in PAIRS}
    assert {"MultiheadAttention", "NonDynamicallyQuantizableLinear", "BatchNorm2d", "Linear", "LSTM",
            "PackedSequence", "DistributedDataParallel", "Upsample"} <= names
    assert len(PAIRS) > 150


@pytest.mark.parametrize("tcls,dcls", PAIRS, ids=[f"{t.__module__}.{t.__qualname__}" for t, _ in PAIRS])
def test_class_lives_at_torchs_module_path(tcls, dcls):
    want = "dtrain" + tcls.__module__[len("torch"):]
    assert dcls.__module__ == want, f"{tcls.__qualname__}: dtrain has it in {dcls.__module__}, torch in {tcls.__module__}"
    assert dcls.__qualname__ == tcls.__qualname__
    owner = importlib.import_module(want)
    for part in tcls.__qualname__.split("."):
        owner = getattr(owner, part)
    assert owner is dcls  # importable (and unpicklable) by that path
