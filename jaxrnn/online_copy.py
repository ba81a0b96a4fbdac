r"""The online-learning comparison of Zucchet et al. 2023 on their copy task, at CPU scale.

Zucchet, Meier, Schug, Mujika & Sacramento, "Online learning of long-range
dependencies", NeurIPS 2023, Table 1 (copy task): an LRU network trained with

- ``bptt``: the exact gradient (:func:`jaxrnn.grad.bptt`);
- ``online``: their rule ("online_full", :func:`jaxrnn.grad.layerwise`): exact
  real-time recurrent learning within each LRU layer (the compressed influence of the
  complex diagonal recurrence, units of 2, ``O(params)`` per step) and spatial
  backpropagation between layers (exact RTRL for one layer);
- ``truncated``: 1-step truncated BPTT (their "online_1truncated"):
  :func:`jaxrnn.grad.tbptt` with ``k = 1``, i.e. the immediate derivative of each step
  with ``h_{t-1}`` held constant (the eigenvalue parameters get ``delta_t h_{t-1}``);
- ``spatial``: spatial backpropagation only (their "online_spatial"): the recurrent
  term ``lambda h_{t-1}`` is a constant, so the eigenvalue parameters ``nu_log``,
  ``theta_log`` get no gradient and the others their immediate one (``truncated``
  with those two gradients zeroed).

Protocol (theirs, scaled down): sequences of the copy task
(:func:`jaxrnn.tasks.copy_pad_batch`, pattern 10, padding 7, 7 bits, ``T = 28``), a
fresh mini-batch per update, the gradient accumulated over each whole sequence with
the parameters frozen and applied at its end (so ``online`` equals ``bptt`` to rounding
for one layer: exact RTRL is exact), Adam with global-norm clipping 1; per-bit binary
cross-entropy on the last 10 steps. Differences from the paper: ``layers`` LRU layers
(``N`` complex units, output width ``N``) stacked directly, with a linear readout,
instead of 4 layers with GLU blocks, normalisation and dropout; far fewer updates.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import grad as G
from jaxrnn.cells import lru
from jaxrnn.engine import scan
from jaxrnn.models import linear
from jaxrnn.tasks import copy_pad_batch

__all__ = ["COPY_METHODS", "check_copy_methods", "compare_online_copy"]

COPY_METHODS = ("bptt", "online", "truncated", "spatial")
# The paper's ranking on the copy task (Table 1, text): BPTT and the exact online rule
# close together, then 1-step truncation, then spatial backpropagation.
PAPER_RANKING = ("bptt", "online", "truncated", "spatial")


def _methods(cells, step_loss):
    cell, online = G.layerwise(cells, step_loss)

    def spatial(params, xs, targets):
        loss, (g, gh) = G.tbptt(cell, step_loss, 1)(params, xs, targets)
        zero = jnp.zeros_like
        g = tuple(p._replace(nu_log=zero(p.nu_log), theta_log=zero(p.theta_log)) for p in g)
        return loss, (g, gh)

    methods = {
        "bptt": G.bptt(cell, step_loss),
        "online": online,
        "truncated": G.tbptt(cell, step_loss, 1),
        "spatial": spatial,
    }
    return cell, methods


def check_copy_methods(methods) -> list[str]:
    """``methods`` as a list of names of :data:`COPY_METHODS`; ``ValueError`` otherwise."""
    methods = list(methods)
    if not methods or any(m not in COPY_METHODS for m in methods):
        raise ValueError(
            f"methods of the zucchet-copy comparison must be among {list(COPY_METHODS)}, "
            f"got {methods}"
        )
    return methods


def compare_online_copy(
    methods=COPY_METHODS,
    *,
    hidden: int = 32,
    layers: int = 1,
    updates: int = 1500,
    batch_size: int = 32,
    lr: float = 3e-3,
    seeds=(0, 1, 2),
    pattern: int = 10,
    pad: int = 7,
    bits: int = 7,
    eval_size: int = 1000,
    evals: int = 10,
    progress=None,
) -> dict[str, Any]:
    """Train ``layers`` stacked LRU layers plus a linear readout with each method and seed.

    Returns ``{"rows": [...], "curves": {method: (evals, seeds) eval losses},
    "eval_at": [...]}``; each row has the method, the final held-out loss and bit
    accuracy (mean and standard deviation over seeds), the cosine of the method's
    first gradient to BPTT's and the time per update.
    """
    methods = check_copy_methods(methods)
    cells = [lru(bits + 1, hidden)] + [lru(hidden, hidden) for _ in range(layers - 1)]
    head_init, head_apply = linear(hidden, bits)
    norm = float(pattern * bits)

    def step_loss(head, y, target):
        b, w = target
        return w * jnp.sum(optax.sigmoid_binary_cross_entropy(head_apply(head, y), b)) / norm

    cell, fns = _methods(cells, step_loss)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))

    def batched(fn):
        def f(params, x, y, w):
            loss, g = jax.vmap(lambda a, b, c: fn(params, a, (b, c)))(x, y, w)
            return jnp.mean(loss), jax.tree_util.tree_map(lambda t: jnp.mean(t, 0), g)

        return f

    @jax.jit
    def evaluate(params, x, y, w):
        cp, hp = params
        ys = jax.vmap(lambda a: scan(cell, cp, a)[1])(x)
        logits = head_apply(hp, ys)
        ce = jnp.sum(w[..., None] * optax.sigmoid_binary_cross_entropy(logits, y)) / norm
        hit = jnp.sum(w[..., None] * ((logits > 0) == (y > 0.5)).astype(w.dtype)) / norm
        return ce / x.shape[0], hit / x.shape[0]

    eval_at = sorted({max(1, round(updates * (k + 1) / evals)) for k in range(evals)})
    rows, curves = [], {}
    ref_fn = jax.jit(batched(fns["bptt"]))
    for name in methods:
        grad_fn = jax.jit(batched(fns[name]))

        @jax.jit
        def update(params, state, x, y, w, grad_fn=grad_fn):
            loss, g = grad_fn(params, x, y, w)
            with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
                u, state = opt.update(g, state, params)
                return optax.apply_updates(params, u), state, loss

        finals, accs, cosines, times, curve = [], [], [], [], []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            xe, ye, we = copy_pad_batch(
                np.random.default_rng(10_000 + seed), eval_size, pattern=pattern, pad=pad, bits=bits
            )
            kc, kh = jax.random.split(jax.random.key(seed))
            params = (cell.init(kc), head_init(kh))
            state = opt.init(params)
            x, y, w = copy_pad_batch(rng, batch_size, pattern=pattern, pad=pad, bits=bits)
            cosines.append(float(G.cosine(grad_fn(params, x, y, w)[1], ref_fn(params, x, y, w)[1])))
            params, state, _ = update(params, state, x, y, w)  # compiles
            jax.block_until_ready(evaluate(params, xe, ye, we))  # compiles
            start, seed_curve = time.perf_counter(), []
            for i in range(2, updates + 1):
                x, y, w = copy_pad_batch(rng, batch_size, pattern=pattern, pad=pad, bits=bits)
                params, state, _ = update(params, state, x, y, w)
                if i in eval_at:
                    seed_curve.append(float(evaluate(params, xe, ye, we)[0]))
                if progress is not None:
                    progress(name, seed, i)
            jax.block_until_ready(params)
            times.append(1e3 * (time.perf_counter() - start) / max(updates - 1, 1))
            ce, acc = evaluate(params, xe, ye, we)
            finals.append(float(ce))
            accs.append(float(acc))
            curve.append(seed_curve)
        curves[name] = np.asarray(curve).T.tolist()
        rows.append(
            dict(
                method=name,
                final_loss=float(np.mean(finals)),
                final_loss_std=float(np.std(finals)),
                bit_accuracy=float(np.mean(accs)),
                bit_accuracy_std=float(np.std(accs)),
                cosine_to_bptt=float(np.mean(cosines)),
                ms_per_update=float(np.mean(times)),
            )
        )
    return {"rows": rows, "curves": curves, "eval_at": [e for e in eval_at if e >= 2]}
