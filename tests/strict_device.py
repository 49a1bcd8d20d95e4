"""A strict stand-in for CuPy, so that the GPU code path runs in every CI job, GPU or not.

Its arrays wrap NumPy arrays, but are not NumPy arrays and refuse to become one
implicitly, exactly where CuPy refuses:

    np.asarray(x), np.float32(x), np.linalg.norm(x)   TypeError, with CuPy's message
    x + host_array, np.add(x, host_array)            TypeError (Python and NumPy scalars are fine)
    x.get(), asnumpy(x)                              the only ways to a NumPy array
    int(x), float(x), bool(x), x.item(), x.tolist()  work, and count as host transfers

On a GPU every host transfer is a synchronization: the CPU waits for the device to finish
all queued work. The module counts them (`transfers()`, `transfer_log()`, `reset_transfers()`),
including indexing with a boolean mask, for which CuPy reads the number of True values back
to size the result. Reductions return 0-d device arrays, as CuPy's do.

What minibert asks of an array module is here: numpy's functions under their names,
`asnumpy`, `random.default_rng(seed)` with the methods of CuPy's Generator (not NumPy's),
and the two CuPy-only operations the backend registers: `scatter_add` (cupyx.scatter_add)
and `erf` (cupyx.scipy.special.erf). Anything else is missing on purpose: a missing name
fails loudly, where a lenient stand-in would hide a call CuPy may not have.
"""

from __future__ import annotations

import builtins  # this module defines sum, any, max, ... as CuPy does: its own code uses builtins.*
import collections
import types

import numpy as np
import scipy.special
# dtypes and dtype information live on the host, in CuPy as well
from numpy import bool_, dtype, e, finfo, float16, float32, float64, iinfo, inf, int8, int16  # noqa: F401
from numpy import int32, int64, nan, newaxis, pi, uint8, uint16, uint32, uint64  # noqa: F401

_transfers = collections.Counter()  # kind -> count, since the last reset


def transfers() -> int:
    """Host transfers (synchronizations) since the last reset."""
    return builtins.sum(_transfers.values())


def transfer_log() -> dict:
    """The same count by kind: {"float": 3, "int": 4, "boolean index": 2, ...}."""
    return dict(_transfers)


def reset_transfers() -> None:
    _transfers.clear()


def _host(kind: str, a: "ndarray") -> np.ndarray:
    _transfers[kind] += 1
    return a._data


# -- what may enter a device computation --------------------------------------------------
def _operand(x):
    """An operand of an elementwise kernel: a device array or a scalar, as in CuPy."""
    if isinstance(x, ndarray):
        return x._data
    if isinstance(x, (bool, int, float, complex, np.generic)):
        return x
    raise TypeError(f"Unsupported type {type(x)}")  # CuPy's words, e.g. for a numpy.ndarray


def _argument(x):
    """An argument of a non-elementwise function (stack, reshape, sum, ...): no host arrays."""
    if isinstance(x, ndarray):
        return x._data
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_argument(v) for v in x)
    return x


def _index(key):
    """An index: device arrays, and (as CuPy allows, copying them over) lists and host arrays."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key._data if isinstance(key, ndarray) else key


def _is_boolean_mask(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return builtins.any(isinstance(k, (ndarray, np.ndarray)) and k.dtype == np.bool_ and k.size for k in keys)


def _wrap(result):
    """Back onto the device: NumPy arrays and NumPy scalars (reductions) become arrays."""
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, (np.ndarray, np.generic)):
        return ndarray(np.asarray(result))
    return result


def _call(func, args, kwargs, convert=_argument):
    out = kwargs.get("out")
    kwargs = {k: _argument(v) for k, v in kwargs.items()}
    result = func(*(convert(a) for a in args), **kwargs)
    if isinstance(out, tuple):  # NumPy's ufunc protocol passes out= as a tuple
        out = out[0] if len(out) == 1 else out
    return out if isinstance(out, ndarray) else _wrap(result)


# -- the array ------------------------------------------------------------------------------
class ndarray:
    """cupy.ndarray's stand-in: a NumPy array held out of NumPy's reach."""

    __slots__ = ("_data",)
    __hash__ = None

    def __init__(self, data: np.ndarray):
        self._data = data

    # metadata is on the host in CuPy too: reading it costs nothing
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    nbytes = property(lambda self: self._data.nbytes)
    T = property(lambda self: ndarray(self._data.T))

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (_wrap(row) for row in self._data)

    def __getitem__(self, key):
        if _is_boolean_mask(key):
            _transfers["boolean index"] += 1
        return _wrap(self._data[_index(key)])

    def __setitem__(self, key, value):
        if _is_boolean_mask(key):
            _transfers["boolean index"] += 1
        self._data[_index(key)] = _operand(value)

    # the explicit ways to the host
    def get(self) -> np.ndarray:
        return _host("get", self).copy()

    def item(self):
        return _host("item", self).item()

    def tolist(self):
        return _host("tolist", self).tolist()

    def __int__(self):
        return int(_host("int", self).item())

    def __float__(self):
        return float(_host("float", self).item())

    def __bool__(self):
        return bool(_host("bool", self))

    def __repr__(self):
        return f"strict_device.ndarray({_host('repr', self)!r})"

    def __format__(self, spec):
        data = _host("format", self)
        return format(data.item() if data.ndim == 0 else data, spec)

    # and the implicit ones, refused
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """np.exp(x) runs on the device, as with CuPy; np.add(x, host_array) is refused."""
        if method != "__call__" or ufunc.__name__ not in _ELEMENTWISE:  # ufunc.at, .reduce: not here
            return NotImplemented
        return _call(ufunc, inputs, kwargs, _operand)

    def __array_function__(self, func, arg_types, args, kwargs):
        """np.stack([x, y]) and np.shape(x) run here; NumPy functions this module lacks are refused."""
        if func.__name__ not in _FUNCTIONS:
            return NotImplemented
        return _FUNCTIONS[func.__name__](*args, **kwargs)


def _method(name):
    def method(self, *args, **kwargs):
        return _call(getattr(self._data, name), args, kwargs)
    method.__name__ = name
    return method


for _name in ("reshape", "transpose", "swapaxes", "squeeze", "ravel", "repeat", "astype", "copy", "fill",
              "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "any", "all", "cumsum", "clip"):
    setattr(ndarray, _name, _method(_name))


def _binary(ufunc):
    def op(self, other):
        return _wrap(ufunc(self._data, _operand(other)))

    def reflected(self, other):
        return _wrap(ufunc(_operand(other), self._data))

    def in_place(self, other):
        ufunc(self._data, _operand(other), out=self._data)
        return self
    return op, reflected, in_place


for _name, _ufunc in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
                      "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
                      "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}.items():
    _op, _reflected, _in_place = _binary(_ufunc)
    setattr(ndarray, f"__{_name}__", _op)
    setattr(ndarray, f"__r{_name}__", _reflected)
    setattr(ndarray, f"__i{_name}__", _in_place)
for _name, _ufunc in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                      "gt": np.greater, "ge": np.greater_equal}.items():
    setattr(ndarray, f"__{_name}__", _binary(_ufunc)[0])


def _unary(ufunc):
    def op(self):
        return ndarray(ufunc(self._data))
    return op


for _name, _ufunc in {"neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert}.items():
    setattr(ndarray, f"__{_name}__", _unary(_ufunc))


# -- the module's functions -----------------------------------------------------------------
def asarray(a, dtype=None):
    """Onto the device (a copy from the host; the same array if it is already there)."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return ndarray(np.array(a, dtype=dtype))


def array(a, dtype=None):
    return ndarray(np.array(a._data if isinstance(a, ndarray) else a, dtype=dtype))


def asnumpy(a) -> np.ndarray:
    """To the host: a copy, counted. Host arrays pass through, as in CuPy."""
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def _like(np_func):
    """zeros_like and friends read only the shape and dtype, so CuPy accepts any array."""
    def f(a, *args, **kwargs):
        return ndarray(np_func(a._data if isinstance(a, ndarray) else a, *args, **kwargs))
    f.__name__ = np_func.__name__
    return f


def _function(np_func):
    def f(*args, **kwargs):
        return _call(np_func, args, kwargs)
    f.__name__ = np_func.__name__
    return f


def _elementwise(np_func):
    def f(*args, **kwargs):
        return _call(np_func, args, kwargs, _operand)
    f.__name__ = np_func.__name__
    return f


_ELEMENTWISE = (  # NumPy's ufuncs, plus where and clip: CuPy runs them all as elementwise kernels
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder", "power", "negative",
    "absolute", "abs", "sign", "sqrt", "square", "reciprocal", "exp", "log", "log1p", "expm1", "tanh", "sin",
    "cos", "maximum", "minimum", "copysign", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_not", "isfinite", "isnan", "isinf", "matmul",
    "where", "clip")
_FUNCTIONS = {name: _elementwise(getattr(np, name)) for name in _ELEMENTWISE}
_FUNCTIONS.update({name: _function(getattr(np, name)) for name in (
    "zeros", "ones", "empty", "full", "arange", "linspace", "eye",
    "stack", "concatenate", "outer", "diag", "dot", "einsum", "broadcast_to", "expand_dims", "reshape",
    "transpose", "sum", "mean", "max", "min", "argmax", "argmin", "all", "any", "shape", "ndim", "size")})
_FUNCTIONS.update({name: _like(getattr(np, name)) for name in ("zeros_like", "ones_like", "empty_like", "full_like")})
_FUNCTIONS.update(asarray=asarray, array=array)
globals().update(_FUNCTIONS)  # strict_device.exp, strict_device.zeros, ... as cupy.exp, cupy.zeros


# -- the two operations CuPy spells differently from NumPy -----------------------------------
def scatter_add(a, slices, value) -> None:
    """a[slices] += value with repeated indices adding up, like cupyx.scatter_add."""
    np.add.at(a._data, _index(slices), _operand(value))


def erf(x):
    """The error function, keeping the dtype, like cupyx.scipy.special.erf."""
    return ndarray(scipy.special.erf(_operand(x)))


# -- random numbers -------------------------------------------------------------------------
class Generator:
    """The methods of cupy.random.Generator that minibert may use, as CuPy has them. Unlike
    NumPy's: integers() takes scalar bounds only and returns a 0-d array (not a Python int)
    when size is None. The stream is Philox, not NumPy's PCG64: the same seed gives other
    numbers than numpy.random.default_rng, as CuPy's does."""

    def __init__(self, seed):
        self._rng = np.random.Generator(np.random.Philox(seed))

    def random(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.standard_normal(size, dtype=dtype)))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        low, high = int(low), (None if high is None else int(high))
        return ndarray(np.asarray(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint)))


random = types.SimpleNamespace(default_rng=Generator, Generator=Generator)
