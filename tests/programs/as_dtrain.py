"""Run a PyTorch program with every `import torch...` answered by dtrain, the file itself unedited:
    python tests/programs/as_dtrain.py program.py [args]

As `python program.py [args]` would: the program's folder is first on sys.path, and the processes it starts
(DataLoader workers, mp.spawn) import dtrain for torch too (torch_alias/ goes on their PYTHONPATH)."""
import importlib.util
import os
import runpy
import sys

_ALIAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_alias")
_spec = importlib.util.spec_from_file_location("_dtrain_torch_alias", os.path.join(_ALIAS, "sitecustomize.py"))
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # installs the meta-path alias
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ALIAS, os.environ.get("PYTHONPATH")) if p)

sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # was this runner's own folder
runpy.run_path(sys.argv[0], run_name="__main__")
