"""Random number generators: one per device, seeded by manual_seed.

Streams are reproducible for a seed on a given device, but they are not bit-identical to torch's
(dtrain draws from NumPy's PCG64 on the CPU and CuPy's generator on CUDA)."""
import contextlib

import numpy as np

from ._device import CPU, META, resolve

_INITIAL_SEED = 67280421310721  # torch's default seed
_STATE_FIELDS = (8, 16, 16, 8, 8)  # seed, PCG64 state, PCG64 increment, has_uint32, uinteger


class Generator:
    """torch.Generator over NumPy's PCG64 (CPU) or CuPy's default bit generator (CUDA).

    A seed gives the same numbers every run on a given device, but not the numbers torch draws for that seed."""

    def __init__(self, device="cpu"):
        self.device = resolve(device)
        self.manual_seed(_INITIAL_SEED)

    def manual_seed(self, seed):
        seed = int(seed)
        if seed < -0x8000_0000_0000_0000 or seed > 0xFFFF_FFFF_FFFF_FFFF:
            raise RuntimeError(f"Overflow when unpacking long")
        self._seed = seed & 0xFFFF_FFFF_FFFF_FFFF
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        self._cp = None
        self._epoch = 0  # CUDA: which stream of this seed the device generator draws from (see get_state)
        return self

    def seed(self):
        s = int(np.random.SeedSequence().entropy) & 0xFFFF_FFFF_FFFF_FFFF
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def _cupy(self):
        if self._cp is None:
            cp = self.device.xp
            seed = self._seed if not self._epoch else int(
                np.random.SeedSequence([self._seed, self._epoch]).generate_state(1, np.uint64)[0])
            with cp.cuda.Device(self.device.index):
                self._cp = cp.random.default_rng(seed)
        return self._cp

    def get_state(self):
        """The state as a uint8 CPU tensor: seed and PCG64 state in fixed little-endian fields (no pickle, so a
        state read back from a checkpoint cannot run code).

        A CUDA generator's position cannot be read back from CuPy's generator, so taking its state starts a new
        stream (epoch) of the seed, and the state names that epoch: draws after set_state(state) repeat the
        draws after get_state(). Unlike torch, taking the state changes the numbers drawn after it."""
        from ._tensor import _wrap
        st = self._np.bit_generator.state
        fields = (self._seed, st["state"]["state"], st["state"]["inc"], st["has_uint32"], st["uinteger"])
        if self.device.type == "cuda":
            self._epoch += 1
            self._cp = None
            fields = (self._seed, self._epoch, 0, 0, 0)
        raw = b"".join(int(v).to_bytes(n, "little") for v, n in zip(fields, _STATE_FIELDS))
        return _wrap(np.frombuffer(raw, dtype=np.uint8).copy(), CPU)

    def set_state(self, new_state):
        data = new_state.numpy() if hasattr(new_state, "numpy") else np.asarray(new_state)
        raw = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
        if len(raw) != sum(_STATE_FIELDS):
            raise RuntimeError(f"Expected either a ByteTensor of {sum(_STATE_FIELDS)} bytes as the generator state, "
                               f"got {len(raw)} bytes")
        vals, pos = [], 0
        for n in _STATE_FIELDS:
            vals.append(int.from_bytes(raw[pos:pos + n], "little"))
            pos += n
        self._seed = vals[0]
        if self.device.type == "cuda":
            self._epoch, self._cp = vals[1], None
            return self
        bg = np.random.PCG64()
        bg.state = {"bit_generator": "PCG64", "state": {"state": vals[1], "inc": vals[2]},
                    "has_uint32": vals[3], "uinteger": vals[4]}
        self._np = np.random.Generator(bg)
        self._cp = None  # CUDA streams restart from the seed
        return self

    # draws, as arrays on `dev`
    def _rng(self, dev):
        return self._np if dev.type == "cpu" else self._cupy()

    def uniform(self, shape, np_dtype, dev, low=0.0, high=1.0):
        with _on(dev):
            return self._uniform(shape, np_dtype, dev, low, high)

    def normal(self, shape, np_dtype, dev, mean=0.0, std=1.0):
        with _on(dev):
            return self._normal(shape, np_dtype, dev, mean, std)

    def integers(self, low, high, shape, np_dtype, dev):
        with _on(dev):
            return self._rng(dev).integers(low, high, size=shape).astype(np_dtype, copy=False)

    def permutation(self, n, np_dtype, dev):
        if dev.type == "cuda":  # CuPy's Generator has no permutation: sort random keys, as torch's GPU randperm does
            with _on(dev):
                return dev.xp.argsort(self._cupy().random(n)).astype(np_dtype, copy=False)
        return self._np.permutation(n).astype(np_dtype, copy=False)

    def _uniform(self, shape, np_dtype, dev, low, high):
        r = self._rng(dev)
        if np_dtype in (np.float32, np.float64):
            a = r.random(shape, dtype=np_dtype)
        else:
            a = r.random(shape).astype(np_dtype)
        if low != 0.0 or high != 1.0:
            a *= (high - low)
            a += low
        return a

    def _normal(self, shape, np_dtype, dev, mean, std):
        r = self._rng(dev)
        if np_dtype in (np.float32, np.float64):
            a = r.standard_normal(shape, dtype=np_dtype)
        else:
            a = r.standard_normal(shape).astype(np_dtype)
        if std != 1.0:
            a *= std
        if mean != 0.0:
            a += mean
        return a


def _on(dev):
    """`dev` made current while drawing: CuPy puts a draw, and the arithmetic on it, on the current device,
    whichever device the generator belongs to."""
    return dev.xp.cuda.Device(dev.index) if dev.type == "cuda" else contextlib.nullcontext()


default_generator = Generator("cpu")
_cuda_generators = {}


def default_generator_for(dev):
    if dev.type != "cuda":
        return default_generator
    g = _cuda_generators.get(dev.index)
    if g is None:
        g = _cuda_generators[dev.index] = Generator(dev)
        g.manual_seed(default_generator.initial_seed())
    return g


def manual_seed(seed):
    """Seed the CPU generator and every CUDA device's generator.

    Streams are reproducible per device, not bit-identical to torch's for the same seed."""
    seed = int(seed)
    default_generator.manual_seed(seed)
    for g in _cuda_generators.values():
        g.manual_seed(seed)
    return default_generator


def seed():
    s = default_generator.seed()
    for g in _cuda_generators.values():
        g.manual_seed(s)
    return s


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state):
    default_generator.set_state(new_state)
