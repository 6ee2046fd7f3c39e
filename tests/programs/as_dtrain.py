"""Run a PyTorch program with every `import torch...` answered by dtrain, the file itself unedited:
    python tests/programs/as_dtrain.py program.py [args]"""
import importlib
import runpy
import sys

import dtrain

sys.modules["torch"] = dtrain
for name in ("nn", "nn.functional", "optim", "optim.lr_scheduler", "utils", "utils.data", "distributed"):
    sys.modules["torch." + name] = importlib.import_module("dtrain." + name)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
