"""SummaryWriter.add_graph's graph: one node per call of a leaf module, edges by the tensors passed on.

torch traces the model with its JIT and writes every op; dtrain has no tracer. It runs the model once on the
given input with forward hooks and writes what they see: an input node per input tensor, a node per leaf-module
call (named by its scope, `Net/Sequential[body]/Linear[0]`, so TensorBoard folds containers), its output shapes
and extra_repr as attributes, and an output node. A tensor that reaches a module from functional code between
modules (a view, an add) is drawn as coming from the module called just before."""
import warnings

from tensorboard.compat.proto.attr_value_pb2 import AttrValue
from tensorboard.compat.proto.graph_pb2 import GraphDef
from tensorboard.compat.proto.node_def_pb2 import NodeDef
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.versions_pb2 import VersionDef

_warned = []


def _tensors(obj):
    from ... import Tensor
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _shapes(tensors):
    return AttrValue(list=AttrValue.ListValue(shape=[
        TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(s)) for s in t.shape]) for t in tensors]))


def module_graph(model, input_to_model, verbose=False):
    from ...autograd.grad_mode import no_grad
    if not _warned:
        _warned.append(True)
        warnings.warn("add_graph: dtrain writes the graph of module calls (one node per leaf-module call, edges by "
                      "the tensors passed between modules), not the graph of individual ops that torch's JIT "
                      "tracer writes.", UserWarning, stacklevel=4)
    if input_to_model is None:
        raise ValueError("add_graph needs input_to_model: dtrain draws the graph by running the model once")
    inputs = input_to_model if isinstance(input_to_model, (list, tuple)) else (input_to_model,)
    root = type(model).__name__
    scopes = {model: root}
    for path, m in model.named_modules():
        if path:
            parent, _, leaf = path.rpartition(".")
            scopes[m] = f"{scopes[model.get_submodule(parent)] if parent else root}/{type(m).__name__}[{leaf}]"
    # producer: id(tensor) -> node; alive keeps those tensors referenced, so that no id is reused for another
    nodes, producer, last, names, alive = [], {}, [None], {}, []
    for i, t in enumerate(_tensors(list(inputs))):
        name = f"input/input.{i + 1}"
        nodes.append(NodeDef(name=name, op="IO Node", attr={"_output_shapes": _shapes([t])}))
        producer[id(t)] = last[0] = name

    def hook(module, args, output):
        base = scopes[module]
        n = names[base] = names.get(base, -1) + 1
        name = base if n == 0 else f"{base}_{n}"
        ins = []
        for t in _tensors(list(args)):
            src = producer.get(id(t), last[0])
            if src is not None and src not in ins:
                ins.append(src)
        attr = {"_output_shapes": _shapes(_tensors(output))}
        if module.extra_repr():
            attr["extra_repr"] = AttrValue(s=module.extra_repr().encode())
        nodes.append(NodeDef(name=name, op=type(module).__name__, input=ins, attr=attr))
        for t in _tensors(output):
            producer[id(t)] = name
            alive.append(t)
        last[0] = name

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with no_grad():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    for i, t in enumerate(_tensors(out)):
        nodes.append(NodeDef(name=f"output/output.{i + 1}", op="IO Node", input=[producer.get(id(t), last[0])],
                             attr={"_output_shapes": _shapes([t])}))
    if verbose:
        for nd in nodes:
            print(f"{nd.name} ({nd.op}) <- {list(nd.input)}")
    return GraphDef(node=nodes, versions=VersionDef(producer=22))
