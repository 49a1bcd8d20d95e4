"""Check a hand-written backward pass against central differences, in float64.

The recipe (CS231n's, and the one every minibert test uses):

1. Draw a random upstream gradient G with the shape of the output, and define the
   scalar L = sum(out * G). An all-ones G would hide errors that cancel across outputs.
2. The analytic gradient of L is what `backward(G)` returns.
3. The numeric gradient of L with respect to one coordinate theta is
   (L(theta + eps) - L(theta - eps)) / (2 eps), with an error of order eps^2.
4. Compare: relative error = |analytic - numeric| / max(|analytic|, |numeric|), over the
   checked coordinates of each tensor (norms). In float64 a correct backward gives
   1e-8 or better; a wrong one gives 1e-2 or worse.

Usage, for any function written as a forward that returns (out, backward):

    def f(x, W, b):
        out, cache = linear_forward(x, W, b)
        return out, lambda dout: dict(zip(["x", "W", "b"], linear_backward(dout, cache)))

    errors = gradcheck(f, {"x": x}, {"W": W, "b": b})   # {"x": 3e-11, "W": 2e-11, "b": 1e-11}
"""

from __future__ import annotations

import numpy as np

from .backend import array_module, to_host


def relative_error(analytic, numeric) -> float:
    """|a - n| / max(|a|, |n|) with Euclidean norms; 0 when both are exactly 0."""
    a, n = np.asarray(to_host(analytic), np.float64), np.asarray(to_host(numeric), np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(n))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - n) / scale)


def gradcheck(fn, inputs, params=None, *, eps=1e-6, seed=0, max_coords=None, dout=None):
    """Relative error of fn's backward for every float input and parameter.

    fn(**inputs, **params) must return (out, backward) where backward(dout) returns a dict
    of gradients keyed like inputs and params (it may omit non-float inputs such as ids).
    Arrays are perturbed in place and restored; pass float64 arrays.
    max_coords: check only this many random coordinates per tensor (for big tensors).
    dout: the upstream gradient (default: standard normal draws, seeded).
    Returns {name: relative error}.
    """
    arrays = {**inputs, **(params or {})}
    for name, a in arrays.items():
        if a.dtype.kind == "f" and a.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 arrays; {name!r} is {a.dtype}")
    rng = np.random.default_rng(seed)
    out, backward = fn(**arrays)
    xp = array_module(out)
    if dout is None:
        dout = xp.asarray(rng.standard_normal(np.shape(out)))
    analytic = backward(dout)

    def objective():
        value, _ = fn(**arrays)
        return float((value * dout).sum())

    errors = {}
    for name, a in arrays.items():
        if a.dtype.kind != "f":
            continue  # integer inputs (token ids, labels) have no gradient
        flat = a.reshape(-1)  # a view: writing to it perturbs `a`
        coords = np.arange(flat.size)
        if max_coords is not None and flat.size > max_coords:
            coords = rng.choice(flat.size, size=max_coords, replace=False)
        numeric = np.empty(len(coords))
        for j, i in enumerate(coords):
            old = float(flat[i])
            flat[i] = old + eps
            plus = objective()
            flat[i] = old - eps
            minus = objective()
            flat[i] = old
            numeric[j] = (plus - minus) / (2 * eps)
        if name not in analytic:
            raise KeyError(f"backward returned no gradient for {name!r}")
        grad = to_host(analytic[name]).reshape(-1)
        errors[name] = relative_error(grad[coords], numeric)
    return errors


def format_errors(errors, threshold=None) -> str:
    """A small table of relative errors, one line per tensor, for printing."""
    width = max((len(k) for k in errors), default=4)
    lines = []
    for name, err in errors.items():
        flag = "" if threshold is None else ("  ok" if err < threshold else "  FAIL")
        lines.append(f"{name:<{width}}  {err:.2e}{flag}")
    return "\n".join(lines)
