r"""The fused whole-sequence path of the gated built-in cells (``rnn``, ``gru``, ``lstm``).

A gated cell computes, at every step, ``g^i_t = W_ih x_t + b_ih`` and
``g^h_t = W_hh h_{t-1} + b_hh``, then a pointwise map of ``(g^i_t, g^h_t, h_{t-1},
s_{t-1})`` gives ``m_t`` and the extra state ``s_t`` (the LSTM cell ``c_t``), and
``h_t = m_t`` or, with a projection (LSTMP), ``h_t = W_hr m_t``. A :class:`Gated`
spec describes that factorisation; :func:`gated_sequence` turns it into the cell's
``Cell.sequence``: a whole-sequence implementation equal to scanning ``step``.

Its derivative is a :func:`jax.custom_jvp` whose tangent is itself a recurrence,
linear in the tangents,

.. math::

    \dot g^h_t = \dot h_{t-1} W_{hh}^\top + \underbrace{h_{t-1} \dot W_{hh}^\top
                 + \dot b_{hh}}_{\text{all } t\text{ at once}}, \qquad
    \dot g^i_t = \underbrace{\dot x_t W_{ih}^\top + x_t \dot W_{ih}^\top
                 + \dot b_{ih}}_{\text{all } t\text{ at once}}, \qquad
    (\dot m_t, \dot s_t) = J_t(\dot g^i_t, \dot g^h_t, \dot h_{t-1}, \dot s_{t-1}),

with the pointwise Jacobian ``J_t`` held as coefficients computed for all steps at
once from the forward pass. So forward mode (``jax.jvp``, ``jax.jacfwd``) works, and
reverse mode, which JAX obtains by transposing this linear recurrence, has the shape
of cuDNN's and haste's hand-written backward: the loop runs only the carry and gate
gradients (one ``(G, R)`` product per step); the weight gradients are GEMMs over all
steps after it (``dW_hh = sum_t dg^h_t h_{t-1}^T``, ``dW_ih = sum_t dg^i_t x_t^T``).

Validity follows the engine (:mod:`jaxrnn.engine`): ``mask[t]`` false leaves the carry
unchanged and zeroes ``y_t``; ``reset[t]`` replaces the carry by ``reset_carry`` just
before step ``t`` is processed; ``reverse`` processes ``T-1, ..., 0``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxrnn.base import Cell, Projection, tree_select
from jaxrnn.cells import _onednn

__all__ = ["Gated", "GatedPair", "GatedWeights", "gated_cell", "gated_sequence"]


class GatedWeights(NamedTuple):
    """The arrays of a gated cell: ``w_ih (G, I)``, ``b_ih (G,)``, ``w_hh (G, R)``,
    ``b_hh (G,)``, ``w_hr (R, H)`` (``None`` where absent)."""

    w_ih: jax.Array
    b_ih: jax.Array | None
    w_hh: jax.Array
    b_hh: jax.Array | None
    w_hr: jax.Array | None


class Gated(NamedTuple):
    """How a gated cell factors for :func:`gated_sequence` (all functions per example).

    Attributes:
      weights: ``params -> GatedWeights``.
      additive: the pointwise map depends on ``g^i + g^h`` only (RNN, LSTM): then
        ``forward``/``tangent`` receive the sum as their first argument and ``None``
        as the second, and the forward loop may run one ``[x, h] @ [W_ih, W_hh]^T``
        product per step instead of two (see ``CONCAT_MAX``).
      split: ``carry -> (h (R,), s)`` (``s`` a pytree or ``None``).
      join: ``(h, s) -> carry``.
      forward: ``(g_i, g_h, h, s) -> (m (H,), s_new, res)``, ``res`` a pytree of
        arrays from which ``coefficients`` builds the Jacobian (keep it small: every
        leaf is stored for every step).
      coefficients: ``(res, h) -> coef``, elementwise, applied to residuals stacked
        over time, ``h`` the stacked incoming ``h_{t-1}``.
      tangent: ``(coef, du, dh, ds) -> (dm, ds_new)``, linear in ``du, dh, ds``,
        using only products of a coefficient with a tangent (so the loop holds no
        primal work), where ``du = dg_i + recurrent(coef, dg_h)``.
      recurrent: ``(coef, dg_h) -> (G,)``, linear in ``dg_h``: how the recurrent
        pre-activation's tangent enters ``du`` (``None``: as it is, ``du = dg_i +
        dg_h``; the GRU scales its candidate block by ``r``). Everything but the
        loop-carried ``dh W_hh^T`` term is then combined for all steps at once, so
        the loop (and the reverse loop that JAX derives from it) carries one
        ``(G,)`` input and output per step.
      onednn: ``"lstm"`` or ``"gru"`` where the cell is exactly oneDNN's LSTM or
        linear-before-reset GRU: :func:`gated_sequence` then runs it on oneDNN where
        :func:`jaxrnn.cells._onednn.usable` says so.
    """

    weights: Callable[[Any], GatedWeights]
    additive: bool
    split: Callable
    join: Callable
    forward: Callable
    coefficients: Callable
    tangent: Callable
    recurrent: Callable | None = None
    onednn: str | None = None


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _zero(t) -> bool:
    return t is None or isinstance(t, SymbolicZero)


def _instantiate(t, like):
    return jax.tree_util.tree_map(
        lambda u, v: jnp.zeros_like(v) if isinstance(u, SymbolicZero) else u,
        t,
        like,
        is_leaf=lambda u: isinstance(u, SymbolicZero),
    )


# Below this many multiply-adds per example and step, ``(I + R) G``, an additive cell's
# forward loop runs one product ``[x_t, h_{t-1}] @ [W_ih, W_hh]^T``; from it on, two
# independent products ``x_t W_ih^T`` and ``h_{t-1} W_hh^T``, which XLA:CPU runs
# concurrently on two cores (benchmarks/README.md, "One product or two").
CONCAT_MAX = 1 << 18


def _one_product(w: GatedWeights) -> bool:
    return (w.w_ih.shape[1] + w.w_hh.shape[1]) * w.w_hh.shape[0] < CONCAT_MAX


@functools.lru_cache(maxsize=256)
def _core(spec: Gated, reverse: bool, unroll: int, masked: bool, resets: bool):
    """The ``custom_jvp`` sequence function for one spec and static configuration."""

    def run(xs, w, h0, s0, hr, sr, mask, rst, with_res):
        concat = spec.additive and _one_product(w)
        if concat:
            W = jnp.concatenate([w.w_ih, w.w_hh], axis=1).T  # (I + R, G)
            b = _add(w.b_ih, w.b_hh)
        else:
            WiT, WhT = w.w_ih.T, w.w_hh.T
        WoT = None if w.w_hr is None else w.w_hr.T

        def body(carry, inp):
            h, s = carry
            x, m_t, r_t = inp
            if resets:
                h, s = tree_select(r_t, (hr, sr), (h, s))
            if concat:
                m, s2, res = spec.forward(_add(jnp.concatenate([x, h]) @ W, b), None, h, s)
            else:
                gi, gh = _add(x @ WiT, w.b_ih), _add(h @ WhT, w.b_hh)
                if spec.additive:
                    gi, gh = gi + gh, None
                m, s2, res = spec.forward(gi, gh, h, s)
            h2 = m if WoT is None else m @ WoT
            if masked:
                h2, s2 = tree_select(m_t, (h2, s2), (h, s))
                y = jnp.where(m_t, h2, jnp.zeros_like(h2))
            else:
                y = h2
            if not with_res:
                return (h2, s2), y
            # Without masks or resets h_{t-1} is the previous output: not stored twice.
            return (h2, s2), (y, h if masked or resets else None, res, m)

        return jax.lax.scan(body, (h0, s0), (xs, mask, rst), reverse=reverse, unroll=unroll)

    def incoming(ys, hp, h0):
        """The stacked ``h_{t-1}`` of every step, in time order."""
        if hp is not None:
            return hp
        if reverse:
            return jnp.concatenate([ys[1:], h0[None]])
        return jnp.concatenate([h0[None], ys[:-1]])

    @jax.custom_jvp
    def core(xs, w, h0, s0, hr, sr, mask, rst):
        return run(xs, w, h0, s0, hr, sr, mask, rst, False)

    def core_jvp(primals, tangents):
        xs, w, h0, s0, hr, sr, mask, rst = primals
        dxs, dw, dh0, ds0, dhr, dsr, _, _ = tangents
        (h, s), (ys, hp, res, ms) = run(xs, w, h0, s0, hr, sr, mask, rst, True)
        hp = incoming(ys, hp, h0)
        coef = spec.coefficients(res, hp)
        # Everything that does not depend on the carried tangent: all steps at once.
        dgi = None if _zero(dw.b_ih) else dw.b_ih
        if not _zero(dxs):
            dgi = _add(dxs @ w.w_ih.T, dgi)
        if not _zero(dw.w_ih):
            dgi = _add(xs @ dw.w_ih.T, dgi)
        e = None if _zero(dw.b_hh) else dw.b_hh
        if not _zero(dw.w_hh):
            e = _add(hp @ dw.w_hh.T, e)
        f = None
        if w.w_hr is not None and not _zero(dw.w_hr):
            f = ms @ dw.w_hr.T
        steps_gates = (xs.shape[0], w.w_hh.shape[0])  # (T, G)
        if e is not None and spec.recurrent is not None:
            e = spec.recurrent(coef, jnp.broadcast_to(e, steps_gates))
        du = _add(dgi, e)  # all of du_t but the loop-carried term dh_{t-1} W_hh^T
        if du is not None:
            du = jnp.broadcast_to(du, steps_gates)
        WhT = w.w_hh.T
        WoT = None if w.w_hr is None else w.w_hr.T
        dh0, ds0 = _instantiate((dh0, ds0), (h0, s0))
        if resets:
            dhr, dsr = _instantiate((dhr, dsr), (hr, sr))

        def body(carry, inp):
            dh, ds = carry
            c_t, du_t, f_t, m_t, r_t = inp
            if resets:
                dh, ds = tree_select(r_t, (dhr, dsr), (dh, ds))
            dgh = dh @ WhT
            if spec.recurrent is not None:
                dgh = spec.recurrent(c_t, dgh)
            dm, ds2 = spec.tangent(c_t, _add(du_t, dgh), dh, ds)
            dh2 = dm if WoT is None else _add(dm @ WoT, f_t)
            if masked:
                dh2, ds2 = tree_select(m_t, (dh2, ds2), (dh, ds))
                dy = jnp.where(m_t, dh2, jnp.zeros_like(dh2))
            else:
                dy = dh2
            return (dh2, ds2), dy

        (dh, ds), dys = jax.lax.scan(
            body, (dh0, ds0), (coef, du, f, mask, rst), reverse=reverse, unroll=unroll
        )
        return ((h, s), ys), ((dh, ds), dys)

    core.defjvp(core_jvp, symbolic_zeros=True)
    return core


def gated_sequence(spec: Gated) -> Callable:
    """``Cell.sequence`` for a gated cell described by ``spec`` (see the module docstring).

    ``sequence(params, xs (T, I), carry, *, mask=None, reset=None, reset_carry=None,
    reverse=False, unroll=1) -> (carry, ys (T, R))``.
    """

    def sequence(
        params, xs, carry, *, mask=None, reset=None, reset_carry=None, reverse=False, unroll=1
    ):
        w = spec.weights(params)
        h0, s0 = spec.split(carry)
        if _onednn.usable(spec, w, xs, h0, s0, mask, reset):
            (h, s), ys = _onednn.sequence(spec, w, xs, h0, s0, reverse)
            return spec.join(h, s), ys
        hr, sr = (None, None) if reset is None else spec.split(reset_carry)
        core = _core(spec, bool(reverse), unroll, mask is not None, reset is not None)
        (h, s), ys = core(xs, w, h0, s0, hr, sr, mask, reset)
        return spec.join(h, s), ys

    return sequence


class GatedPair(NamedTuple):
    """``Cell.sequence_pair`` of a gated cell: both directions of a bidirectional layer in
    one oneDNN call (:func:`jaxrnn.cells._onednn.sequences`), where the backward cell's
    ``sequence_pair`` is a ``GatedPair`` of the same oneDNN kind, both directions have
    the same width and :func:`jaxrnn.cells._onednn.usable` holds for each; ``None``
    otherwise (the engine then runs the directions one after the other). On 2 cores the
    call runs one direction per core over the whole batch, where two calls would each
    cut the batch in two (``benchmarks/README.md``)."""

    spec: Gated

    def __call__(
        self,
        params,
        backward_params,
        xs,
        carry,
        backward_carry,
        *,
        backward,
        unroll=1,
        concat=False,
    ):
        del unroll  # oneDNN runs its own loop
        other = backward.sequence_pair
        # (usable() below rejects specs without a oneDNN kind.)
        if not (isinstance(other, GatedPair) and other.spec.onednn == self.spec.onednn):
            return None
        specs = (self.spec, other.spec)
        ws = [s.weights(p) for s, p in zip(specs, (params, backward_params))]
        (h0, s0), (h1, s1) = self.spec.split(carry), other.spec.split(backward_carry)
        if ws[0].w_hh.shape != ws[1].w_hh.shape or not all(
            _onednn.usable(s, w, xs, h, c, None, None)
            for s, w, h, c in zip(specs, ws, (h0, h1), (s0, s1))
        ):
            return None
        states, ys = _onednn.sequences(self.spec, ws, xs, (h0, h1), (s0, s1), (False, True))
        carries = (self.spec.join(*states[0]), other.spec.join(*states[1]))
        return carries, ys.reshape(ys.shape[0], -1) if concat else (ys[:, 0], ys[:, 1])


def gated_cell(spec: Gated, init, initial_carry, *, input_size: int, output_size: int) -> Cell:
    """A :class:`~jaxrnn.Cell` whose ``step``, ``projection`` and ``sequence`` all come
    from ``spec`` (one copy of the cell's equations: ``spec.forward``)."""

    def project(params, x):
        w = spec.weights(params)
        return _add(w.w_ih @ x, w.b_ih)

    def projected_step(params, carry, u):
        w = spec.weights(params)
        h, s = spec.split(carry)
        gh = _add(w.w_hh @ h, w.b_hh)
        if spec.additive:
            m, s, _ = spec.forward(u + gh, None, h, s)
        else:
            m, s, _ = spec.forward(u, gh, h, s)
        h = m if w.w_hr is None else w.w_hr @ m
        return spec.join(h, s), h

    def step(params, carry, x):
        return projected_step(params, carry, project(params, x))

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=output_size,
        projection=Projection(project, projected_step),
        sequence=gated_sequence(spec),
        sequence_pair=GatedPair(spec),
    )
