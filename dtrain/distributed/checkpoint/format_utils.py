"""Whole-checkpoint tools: consolidate a sharded checkpoint into one file, and describe one."""
import os

from .metadata import read_metadata
from .state_dict_loader import load_all


def consolidate(checkpoint_id, out_file):
    """Write the whole checkpoint as one `dtrain.save` file (PyTorch's zip format, loadable by torch.load)."""
    from ... import save as _save
    state = load_all(checkpoint_id)
    _save(state, os.fspath(out_file))
    return out_file


def dcp_to_torch_save(dcp_checkpoint_dir, torch_save_path):
    """torch's name for consolidate."""
    consolidate(dcp_checkpoint_dir, torch_save_path)


def describe(checkpoint_id):
    """[(key, shape, dtype, bytes)] for every key of a checkpoint; non-tensors have shape None and dtype
    'object'."""
    meta = read_metadata(os.path.abspath(os.fspath(checkpoint_id)))
    rows = []
    for fqn, e in meta["keys"].items():
        if e["type"] == "tensor":
            rows.append((fqn, tuple(e["shape"]), e["dtype"], sum(c["length"] for c in e["chunks"])))
        else:
            rows.append((fqn, None, "object", e["length"]))
    return rows


def format_table(rows):
    lines = []
    width = max([len(r[0]) for r in rows] + [3])
    for fqn, shape, dtype, nbytes in rows:
        shp = "-" if shape is None else "[" + ", ".join(map(str, shape)) + "]"
        lines.append(f"{fqn:<{width}}  {shp:<20} {dtype:<10} {nbytes:>12,d}")
    total = sum(r[3] for r in rows)
    lines.append(f"{len(rows)} keys, {total:,d} bytes")
    return "\n".join(lines)

