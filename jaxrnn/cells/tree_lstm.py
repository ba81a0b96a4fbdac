"""Child-Sum Tree-LSTM (Tai, Socher & Manning 2015), run as a scan over the nodes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, gated_weights
from jaxrnn.initializers import Initializer


class TreeLSTMParams(NamedTuple):
    """Child-Sum Tree-LSTM parameters, gates stacked in the order ``i, f, u, o``.

    ``w_ih (4H, I)``, ``w_hh (4H, H)``, ``b_ih (4H,)``, ``b_hh (4H,)`` (biases ``None``
    when built with ``bias=False``): the layout of :class:`~jaxrnn.LSTMParams`, with
    Tai et al.'s ``u`` in the place of the LSTM's ``g``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


class TreeLSTMCarry(NamedTuple):
    """The states of every node seen so far: ``h, c (N, H)`` (row ``k`` is node ``k``),
    ``parent (N,)`` (the parent index of each node seen, ``-1`` elsewhere) and the
    index ``t ()`` of the next node. ``N = max_nodes``; every leaf has the parameters'
    dtype, so the carry ravels into one vector (RTRL)."""

    h: jax.Array
    c: jax.Array
    parent: jax.Array
    t: jax.Array


@configured("child_sum_tree_lstm")
def child_sum_tree_lstm(
    input_size: int,
    hidden_size: int,
    *,
    max_nodes: int,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Child-Sum Tree-LSTM (Tai, Socher & Manning, ACL 2015, §3.1; seed 000's notes).

    A tree of at most ``N = max_nodes`` nodes is given in topological order (every
    child before its parent, the root last) with the parent index of each node
    (``-1`` for the root). The cell reads one node per step, so :func:`jaxrnn.scan`
    over the nodes runs the tree, ``length`` pads batches of trees of different sizes,
    and ``jax.vmap`` batches them. Step ``j`` reads ``x = [x_j (I,), parent(j)]``
    (build it with :func:`tree_inputs`) and, with ``C(j)`` the nodes already seen
    whose parent is ``j``, computes (gate order ``i, f, u, o``):

    .. math::

        \tilde h_j &= \textstyle\sum_{k \in C(j)} h_k \\
        i_j &= \sigma(W_{ii} x_j + b_{ii} + W_{hi} \tilde h_j + b_{hi}) \\
        f_{jk} &= \sigma(W_{if} x_j + b_{if} + W_{hf} h_k + b_{hf}),
            \quad k \in C(j) \text{ (one forget gate per child)} \\
        u_j &= \tanh(W_{iu} x_j + b_{iu} + W_{hu} \tilde h_j + b_{hu}) \\
        o_j &= \sigma(W_{io} x_j + b_{io} + W_{ho} \tilde h_j + b_{ho}) \\
        c_j &= i_j \odot u_j + \textstyle\sum_{k \in C(j)} f_{jk} \odot c_k \\
        h_j &= o_j \odot \tanh(c_j), \qquad y_j = h_j

    A leaf has ``C(j)`` empty (``h~ = 0``, ``c_j = i_j u_j``); on a chain (node
    ``j``'s parent is ``j + 1``) the cell is :func:`jaxrnn.lstm` with the same
    parameters. The root's output is the last valid ``y`` (``jaxrnn.losses.pool_last``).
    Cost per node ``O(N H^2)`` (the child forget gates are evaluated for every slot and
    masked). Parameters: ``4H(I + H)`` weights plus ``8H`` biases.

    Args:
      input_size: ``I``, the width of the node features (the cell reads ``I + 1``).
      hidden_size: ``H``.
      max_nodes: ``N``, the most nodes of a tree (a node at index ``>= N`` is not
        stored, so its parent would not see it).
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`TreeLSTMParams`, carry
      :class:`TreeLSTMCarry`, ``input_size = I + 1`` and output ``y = h_j (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    check_positive_int("max_nodes", max_nodes)
    dtype = check_float_dtype("dtype", dtype)
    H, N, In = hidden_size, max_nodes, input_size

    def init(key):
        w = gated_weights(
            key,
            gates=4,
            input_size=In,
            hidden_size=H,
            recurrent_size=H,
            bias=bias,
            dtype=dtype,
            input_init=input_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )
        return TreeLSTMParams(**w)

    def initial_carry(params):
        dt = params.w_hh.dtype
        return TreeLSTMCarry(
            jnp.zeros((N, H), dt), jnp.zeros((N, H), dt), jnp.full((N,), -1, dt), jnp.zeros((), dt)
        )

    def step(params, carry, x):
        p = params
        j = jnp.round(carry.t)
        slots = jnp.arange(N, dtype=carry.t.dtype)
        child = (jnp.round(carry.parent) == j) & (slots < j)  # (N,)
        feat, parent = x[:In], x[In]
        gi = p.w_ih @ feat
        if p.b_ih is not None:
            gi = gi + p.b_ih
        h_sum = jnp.where(child[:, None], carry.h, 0).sum(0)
        gh = p.w_hh @ h_sum
        if p.b_hh is not None:
            gh = gh + p.b_hh
        i = jax.nn.sigmoid(gi[:H] + gh[:H])
        u = jnp.tanh(gi[2 * H : 3 * H] + gh[2 * H : 3 * H])
        o = jax.nn.sigmoid(gi[3 * H :] + gh[3 * H :])
        af = carry.h @ p.w_hh[H : 2 * H].T  # (N, H): W_hf h_k for every slot
        if p.b_hh is not None:
            af = af + p.b_hh[H : 2 * H]
        f = jax.nn.sigmoid(gi[H : 2 * H] + af)
        c = i * u + jnp.where(child[:, None], f * carry.c, 0).sum(0)
        h = o * jnp.tanh(c)
        here = (slots == j)[:, None]
        new = TreeLSTMCarry(
            jnp.where(here, h, carry.h),
            jnp.where(here, c, carry.c),
            jnp.where(here[:, 0], parent, carry.parent),
            j + 1,
        )
        return new, h

    return Cell(init, initial_carry, step, input_size=In + 1, output_size=H)


def tree_inputs(features, parents) -> jax.Array:
    """``xs (N, I + 1)`` for :func:`child_sum_tree_lstm`: node features and parent indices.

    Args:
      features: ``(N, I)`` node features in topological order.
      parents: ``(N,)`` integers: ``parents[k]`` is the parent of node ``k``
        (``k < parents[k] < N``), ``-1`` for the root, which must be the last node.

    Raises:
      ValueError: shapes disagree, or the order is not topological with one root last.
    """
    parents_np = np.asarray(parents)
    features = jnp.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, I), got {features.shape}")
    n = features.shape[0]
    if parents_np.shape != (n,) or not np.issubdtype(parents_np.dtype, np.integer):
        raise ValueError(
            f"parents must be an integer array of shape ({n},), got {parents_np.dtype} "
            f"{parents_np.shape}"
        )
    k = np.arange(n)
    inner = parents_np[:-1]
    if parents_np[-1] != -1 or np.any(inner <= k[:-1]) or np.any(inner >= n):
        raise ValueError(
            "parents must list each node's parent after the node (topological order) and "
            f"-1 for the root, which comes last; got {parents_np.tolist()}"
        )
    return jnp.concatenate([features, jnp.asarray(parents_np, features.dtype)[:, None]], axis=1)
