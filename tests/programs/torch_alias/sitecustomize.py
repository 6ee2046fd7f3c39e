"""On PYTHONPATH, makes every `import torch...` in this interpreter and in every process it starts load
dtrain instead: how the tests run unedited PyTorch programs whose child processes import torch again.

`torch.X.Y` is `dtrain.X.Y`, the same module object (never a second copy: a second copy has its own classes,
and DDP would then reject its own tensors). A name dtrain lacks fails as a missing torch module would."""
import importlib
import importlib.abc
import importlib.util
import sys


class _AsDtrain(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name != "torch" and not name.startswith("torch."):
            return None
        try:
            if importlib.util.find_spec("dtrain" + name[len("torch"):]) is None:
                return None  # then no finder knows it: ModuleNotFoundError, as for any module torch lacks
        except ModuleNotFoundError:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        module = importlib.import_module("dtrain" + spec.name[len("torch"):])
        spec.loader_state = module.__spec__  # the import system sets __spec__ to the alias's; exec_module undoes it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(f, _AsDtrain) or type(f).__name__ == "_AsDtrain" for f in sys.meta_path):
    sys.meta_path.insert(0, _AsDtrain())
