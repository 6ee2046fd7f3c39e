"""tests/programs/as_dtrain.py runs a PyTorch program as `python program.py` would, with every `torch.*` module
answered by the dtrain module of the same path (the same object, never a second copy)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "programs", "as_dtrain.py")

PROGRAM = '''
import sys
import helper_next_to_the_program          # the program's folder is on sys.path, as under `python program.py`
import torch
import torch.nn.modules.activation         # subpackages the runner never named
import torch.utils.data.dataloader
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
import dtrain
assert torch is dtrain and F is dtrain.nn.functional
assert torch.nn.modules.activation.ReLU is dtrain.nn.ReLU
assert DistributedDataParallel is dtrain.nn.parallel.DistributedDataParallel
copies = [k for k in sys.modules if (k == "torch" or k.startswith("torch."))
          and sys.modules[k] is not sys.modules.get("dtrain" + k[len("torch"):])]
assert not copies, copies
assert dtrain.nn.__spec__.name == "dtrain.nn"  # the alias leaves dtrain's own modules as they were
try:
    import torch.no_such_module
except ModuleNotFoundError as e:
    assert e.name == "torch.no_such_module", e.name
else:
    raise AssertionError("a module dtrain lacks imported")
import subprocess
child = subprocess.run([sys.executable, "-c", "import torch, dtrain; print(torch is dtrain)"],
                       capture_output=True, text=True)
print("OK", helper_next_to_the_program.VALUE, child.stdout.strip())
'''


def test_runner_aliases_every_torch_module_and_finds_the_programs_folder(tmp_path):
    (tmp_path / "helper_next_to_the_program.py").write_text("VALUE = 42\n")
    (tmp_path / "program.py").write_text(PROGRAM)
    p = subprocess.run([sys.executable, RUNNER, str(tmp_path / "program.py")], capture_output=True, text=True,
                       timeout=120, cwd=str(HERE))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["OK", "42", "True"]  # and a child process imports dtrain for torch too
