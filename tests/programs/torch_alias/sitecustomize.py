"""On PYTHONPATH, makes every `import torch...` in this interpreter and in every process it starts load
dtrain instead: how the tests run unedited PyTorch programs whose child processes import torch again."""
import importlib
import importlib.abc
import importlib.util
import sys


class _AsDtrain(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("dtrain" + spec.name[len("torch"):])

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _AsDtrain())
