"""RNNCell, LSTMCell, GRUCell and the multi-layer RNN, LSTM, GRU, with torch's parameter names and layouts.

The sequence layers project the whole input sequence with one matmul per layer and direction, then step
through time with one hidden-to-hidden matmul per step; the cells are composed from primitives."""
import math

from ... import arange, cat, empty, stack, where, zeros
from .. import functional as F, init
from ...amp._dispatch import autocast_op
from ..parameter import Parameter
from .module import Module

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _rnn_step(mode, gi, h, w_hh, b_hh, w_hr=None):
    """One time step given the input projection gi = x W_ih^T + b_ih; returns the new state (h, or (h, c)).
    An LSTM with projections (w_hr) carries h = (o * tanh(c)) W_hr^T."""
    if mode == "LSTM":
        h, c = h
        i, f, g, o = (gi + F.linear(h, w_hh, b_hh)).chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return (h if w_hr is None else F.linear(h, w_hr)), c
    gh = F.linear(h, w_hh, b_hh)
    if mode == "GRU":
        ir, iz, in_ = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
        n = (in_ + r * hn).tanh()
        return n + z * (h - n)  # (1 - z) * n + z * h
    pre = gi + gh
    return pre.tanh() if mode == "RNN_TANH" else pre.relu()


def _cell_op(mode, name):
    """torch's cell op `name` (input, hx, w_ih, w_hh, b_ih, b_hh) -> the new state: CUDA autocast runs it
    in the lower precision as a whole (the state too); the CPU runs its parts under their own policies."""
    @autocast_op(name, composite=True)
    def cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        return _rnn_step(mode, F.linear(input, w_ih, b_ih), hx, w_hh, b_hh)
    cell.__name__ = cell.__qualname__ = name
    return cell


_CELLS = {mode: _cell_op(mode, name) for mode, name in (("LSTM", "lstm_cell"), ("GRU", "gru_cell"),
                                                        ("RNN_TANH", "rnn_tanh_cell"), ("RNN_RELU", "rnn_relu_cell"))}


class RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty((num_chunks * hidden_size, input_size), device=device, dtype=dtype))
        self.weight_hh = Parameter(empty((num_chunks * hidden_size, hidden_size), device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if "bias" in self.__dict__ and self.bias is not True:
            s += ", bias={bias}"
        if "nonlinearity" in self.__dict__ and self.nonlinearity != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def _prepare(self, input, hx, name):
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} expected {self.input_size}")
        if hx is not None:
            for h in (hx if isinstance(hx, tuple) else (hx,)):
                if h.dim() not in (1, 2):
                    raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {h.dim()}D instead")
                if input.dim() != h.dim():
                    raise ValueError(f"{name}: Expected hidden to be {input.dim()}D since input is "
                                     f"{input.dim()}D, got {h.dim()}D instead")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            z = zeros(x.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (z, z) if name == "LSTMCell" else z
        elif not batched:
            hx = tuple(h.unsqueeze(0) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(0)
        return x, hx, batched

    def _cell(self, mode, input, hx, name):
        x, h, batched = self._prepare(input, hx, name)
        out = _CELLS[mode](x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not batched:
            out = tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
        return out


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._cell("RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU", input, hx, "RNNCell")


class LSTMCell(RNNCellBase):
    """One LSTM step; gates in torch's order (input, forget, cell, output). Returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        return self._cell("LSTM", input, hx, "LSTMCell")


class GRUCell(RNNCellBase):
    """One GRU step; gates in torch's order (reset, update, new)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._cell("GRU", input, hx, "GRUCell")


class RNNBase(Module):
    """Multi-layer, optionally bidirectional recurrent layer with torch's flat parameter names
    (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_ih_l0_reverse, ...; weight_hr_l0 for an LSTM
    with projections)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        if not (0 <= dropout <= 1) or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero" if isinstance(hidden_size, int) else
                             f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gates = _GATES[mode] * hidden_size
        num_dir = 2 if bidirectional else 1
        out_size = proj_size or hidden_size  # what h carries
        self._flat_weights_names = []
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else out_size * num_dir
            for d in range(num_dir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes = [("weight_ih", (gates, in_size)), ("weight_hh", (gates, out_size))]
                if bias:
                    shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(empty(shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    # torch's RNNs keep their weights' names grouped per layer and direction, and the weights themselves in
    # `_flat_weights`; its __setstate__ reads both
    _TORCH_ONLY_STATE = Module._TORCH_ONLY_STATE + ("_all_weights", "_flat_weights", "_flat_weight_refs")

    def _torch_state(self, state):
        super()._torch_state(state)
        n = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        names = self._flat_weights_names
        state["_all_weights"] = [names[i:i + n] for i in range(0, len(names), n)]
        state["_flat_weights"] = [getattr(self, w, None) for w in names]

    @property
    def all_weights(self):
        n = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        names = self._flat_weights_names
        return [[getattr(self, w) for w in names[i:i + n]] for i in range(0, len(names), n)]

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op kept for torch compatibility (there is no cuDNN weight buffer to compact)."""

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    def _check(self, input, hx, batched):
        expected = 3 if batched else 2
        if input.dim() != expected:
            raise ValueError(f"input must have {expected} dimensions, got {input.dim()}")
        if self.input_size != input.shape[-1]:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        num_dir = 2 if self.bidirectional else 1
        n = input.shape[0 if self.batch_first else 1]
        if self.mode != "LSTM":
            checks = [(hx, (self.num_layers * num_dir, n, self.hidden_size), "hidden")]
        else:
            checks = [(hx[0], (self.num_layers * num_dir, n, self.proj_size or self.hidden_size), "hidden[0]"),
                      (hx[1], (self.num_layers * num_dir, n, self.hidden_size), "hidden[1]")]
        for h, want, what in checks:
            if tuple(h.shape) != want:
                raise RuntimeError(f"Expected {what} size {want}, got {list(h.shape)}")

    def forward(self, input, hx=None):
        from ..utils.rnn import PackedSequence
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        lstm = self.mode == "LSTM"
        batched = input.dim() == 3
        if input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                for h in (hx if isinstance(hx, tuple) else (hx,)):
                    if h.dim() != 2:
                        raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {h.dim()}-D "
                                           f"tensor")
                hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
        elif hx is not None:
            for h in (hx if isinstance(hx, tuple) else (hx,)):
                if h.dim() != 3:
                    raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {h.dim()}-D tensor")
        x = input.transpose(0, 1) if self.batch_first else input  # (L, N, I)
        hx = self._initial_state(x, hx)
        self._check(x.transpose(0, 1) if self.batch_first else x, hx, True)
        x, state = self._layers(x, hx)
        out = x.transpose(0, 1) if self.batch_first else x
        if not batched:
            out = out.squeeze(batch_dim)
            state = tuple(s.squeeze(1) for s in state) if lstm else state.squeeze(1)
        return out, state

    def _initial_state(self, x, hx):
        if hx is not None:
            return hx
        n, num_dir = x.shape[1], 2 if self.bidirectional else 1
        z = zeros(self.num_layers * num_dir, n, self.hidden_size, dtype=x.dtype, device=x.device)
        if self.mode != "LSTM":
            return z
        return zeros(self.num_layers * num_dir, n, self.proj_size or self.hidden_size, dtype=x.dtype,
                     device=x.device), z

    def _forward_packed(self, input, hx):
        """Run the padded, length-sorted batch, freezing each sequence's state once it has ended (so h_n is the
        state at its own last step, and the reverse direction starts at that step), then pack the output."""
        from ..utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
        lstm = self.mode == "LSTM"
        if input.data.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {input.data.dim()}")
        sorted_input = PackedSequence(input.data, input.batch_sizes)  # the padding stays in sorted order
        x, lengths = pad_packed_sequence(sorted_input)  # (T, N, I)
        if hx is not None and input.sorted_indices is not None:  # the caller's order -> the sorted order
            perm = input.sorted_indices
            hx = tuple(h.index_select(1, perm) for h in hx) if lstm else hx.index_select(1, perm)
        hx = self._initial_state(x, hx)
        self._check(x.transpose(0, 1) if self.batch_first else x, hx, True)  # packed data is time-major always
        steps = x.shape[0]
        live = (arange(steps)[:, None] < lengths[None, :]).to(x.device)[..., None]  # (T, N, 1)
        x, state = self._layers(x, hx, live)
        data = pack_padded_sequence(x, lengths).data
        if input.unsorted_indices is not None:  # the sorted order -> the caller's order
            perm = input.unsorted_indices
            state = tuple(s.index_select(1, perm) for s in state) if lstm else state.index_select(1, perm)
        return PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), state

    def _layers(self, x, hx, live=None):
        """Every layer and direction over the time-major x (L, N, I) from the states hx; returns the last
        layer's output (L, N, D * H_out) and the final states. Where live (L, N, 1) is False a step leaves
        the state as it was."""
        mode, lstm = self.mode, self.mode == "LSTM"
        num_dir = 2 if self.bidirectional else 1
        steps, n = x.shape[0], x.shape[1]
        out_size = self.proj_size or self.hidden_size
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(num_dir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
                b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
                w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size else None
                k = layer * num_dir + d
                state = (hx[0][k], hx[1][k]) if lstm else hx[k]
                gi = F.linear(x, w_ih, b_ih)  # the whole sequence's input projection in one product
                ys = [None] * steps
                for t in (range(steps - 1, -1, -1) if d else range(steps)):
                    new = _rnn_step(mode, gi[t], state, w_hh, b_hh, w_hr)
                    if live is not None:  # an ended sequence keeps its state
                        new = tuple(where(live[t], a, b) for a, b in zip(new, state)) if lstm else \
                            where(live[t], new, state)
                    state = new
                    ys[t] = state[0] if lstm else state
                outs.append(stack(ys) if steps else zeros(0, n, out_size, dtype=x.dtype, device=x.device))
                if lstm:
                    h_n.append(state[0])
                    c_n.append(state[1])
                else:
                    h_n.append(state)
            x = cat(outs, -1) if num_dir > 1 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        hn = stack(h_n)
        return x, ((hn, stack(c_n)) if lstm else hn)


def _no_projections(kwargs):
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, *args, **kwargs):
        _no_projections(kwargs)
        nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Multi-layer LSTM; forward(input, (h_0, c_0)) returns output, (h_n, c_n). With proj_size > 0 the hidden
    state (and the output) is projected to proj_size features by weight_hr_l{k}."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Multi-layer GRU."""

    def __init__(self, *args, **kwargs):
        _no_projections(kwargs)
        super().__init__("GRU", *args, **kwargs)
