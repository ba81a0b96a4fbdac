"""Cell-specific properties the generic battery cannot state: Clockwork RNN ticks, the
Child-Sum Tree-LSTM on hand-computed and padded trees, and the relations between the
LSTM and GRU variants (each also has a NumPy reference in the battery)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as R
from references import child_sum_tree, sigmoid

import jaxrnn
import jaxrnn.losses

F64 = jnp.float64


# ----------------------------------------------------------------------- Clockwork RNN


def test_clockwork_module_is_constant_between_its_ticks():
    """Periods 1, 2, 4: module k changes at t mod T_k == 0 and only then (t from 0)."""
    periods, m = (1, 2, 4), 2
    cell = jaxrnn.clockwork_rnn(3, 6, periods=periods, dtype=F64)
    params = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (13, 3), F64)
    carry, ys = jaxrnn.scan(cell, params, xs)
    prev = np.zeros(6)
    for t, y in enumerate(np.asarray(ys)):
        for k, T_k in enumerate(periods):
            block = slice(k * m, (k + 1) * m)
            if t % T_k == 0:
                assert np.all(y[block] != prev[block]), (t, k)
            else:
                np.testing.assert_array_equal(y[block], prev[block])
        prev = y
    assert float(carry.t) == 13 % 4  # the counter runs modulo lcm(periods)


def test_clockwork_slower_modules_feed_faster_ones_only():
    """d h_t / d h_{t-1} is block upper-triangular (module order = increasing period),
    and the masked blocks of w_hh get no gradient."""
    cell = jaxrnn.clockwork_rnn(2, 6, num_modules=3, dtype=F64)
    params = cell.init(jax.random.key(0))
    h = jax.random.normal(jax.random.key(1), (6,), F64)
    x = jnp.ones(2, F64)
    step_h = lambda h: cell.step(params, jaxrnn.ClockworkCarry(h, jnp.zeros((), F64)), x)[1]  # noqa: E731
    D = np.asarray(jax.jacfwd(step_h)(h))  # t = 0: every module updates
    module = np.repeat(np.arange(3), 2)
    below = module[None, :] < module[:, None]  # column module faster than row module
    np.testing.assert_array_equal(D[below], 0.0)
    assert np.all(D[~below] != 0.0)
    np.testing.assert_array_equal(params.w_hh[below], 0.0)
    g = jax.grad(lambda p: jnp.sum(jaxrnn.scan(cell, p, jnp.ones((5, 2), F64))[1]))(params)
    np.testing.assert_array_equal(g.w_hh[below], 0.0)


def test_clockwork_counter_is_exact_in_float32():
    cell = jaxrnn.clockwork_rnn(1, 3, periods=(1, 3, 5))
    params = cell.init(jax.random.key(0))
    f32 = jnp.float32
    carry = jaxrnn.ClockworkCarry(jnp.zeros(3, f32), jnp.asarray(2**24 - 1, f32))
    carry, _ = cell.step(params, carry, jnp.ones(1, f32))
    assert float(carry.t) == (2**24 - 1) % 15 + 1  # stored modulo lcm = 15, never large


# ------------------------------------------------------------------- Child-Sum Tree-LSTM


def _tree_cell(H=3, N=8):
    cell = jaxrnn.child_sum_tree_lstm(2, H, max_nodes=N, dtype=F64)
    return cell, cell.init(jax.random.key(0))


def test_tree_lstm_two_level_tree_by_hand():
    """Leaves 0 and 1 under root 2 (Tai et al. eqs. 2-8 written out for this tree)."""
    cell, p = _tree_cell()
    feats = jax.random.normal(jax.random.key(2), (3, 2), F64)
    _, ys = jaxrnn.scan(cell, p, jaxrnn.tree_inputs(feats, np.array([2, 2, -1])))
    W = np.split(np.asarray(p.w_ih), 4)  # i, f, u, o
    U = np.split(np.asarray(p.w_hh), 4)
    b = np.split(np.asarray(p.b_ih + p.b_hh), 4)
    x0, x1, x2 = np.asarray(feats)
    # leaves: no children, so h~ = 0 and c = i * u
    c0 = sigmoid(W[0] @ x0 + b[0]) * np.tanh(W[2] @ x0 + b[2])
    h0 = sigmoid(W[3] @ x0 + b[3]) * np.tanh(c0)
    c1 = sigmoid(W[0] @ x1 + b[0]) * np.tanh(W[2] @ x1 + b[2])
    h1 = sigmoid(W[3] @ x1 + b[3]) * np.tanh(c1)
    # root: h~ = h0 + h1, one forget gate per child
    ht = h0 + h1
    i2 = sigmoid(W[0] @ x2 + U[0] @ ht + b[0])
    f20 = sigmoid(W[1] @ x2 + U[1] @ h0 + b[1])
    f21 = sigmoid(W[1] @ x2 + U[1] @ h1 + b[1])
    u2 = np.tanh(W[2] @ x2 + U[2] @ ht + b[2])
    o2 = sigmoid(W[3] @ x2 + U[3] @ ht + b[3])
    h2 = o2 * np.tanh(i2 * u2 + f20 * c0 + f21 * c1)
    np.testing.assert_allclose(np.asarray(ys), np.stack([h0, h1, h2]), rtol=1e-13, atol=1e-15)


def test_tree_lstm_padded_batch_equals_trees_one_by_one():
    cell, p = _tree_cell()
    trees = [np.array([2, 2, -1]), np.array([4, 3, 3, 4, -1]), np.array([6, 2, 5, 5, 5, 6, -1])]
    N = 8
    xs, lengths = [], []
    for k, parents in enumerate(trees):
        feats = jax.random.normal(jax.random.key(10 + k), (len(parents), 2), F64)
        x = jaxrnn.tree_inputs(feats, parents)
        xs.append(jnp.pad(x, ((0, N - x.shape[0]), (0, 0))))
        lengths.append(x.shape[0])
    run = jax.jit(jax.vmap(lambda x, n: jaxrnn.scan(cell, p, x, length=n)[1]))
    ys = run(jnp.stack(xs), jnp.asarray(lengths))
    for k, parents in enumerate(trees):
        n = len(parents)
        one = jaxrnn.scan(cell, p, xs[k][:n])[1]
        np.testing.assert_allclose(ys[k, :n], one, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(ys[k, n:], 0.0)
        ref = child_sum_tree(p, np.asarray(xs[k][:n, :2]), parents)  # Tai's equations
        np.testing.assert_allclose(one, ref, rtol=1e-12, atol=1e-14)
    roots = jax.vmap(jaxrnn.losses.pool_last)(ys, jnp.asarray(lengths))  # the root is last
    np.testing.assert_array_equal(roots[1], ys[1, 4])


def test_tree_lstm_on_a_chain_is_the_lstm():
    """Each node the only child of the next: one forget gate on one child = an LSTM."""
    cell, p = _tree_cell(H=4)
    feats = jax.random.normal(jax.random.key(3), (6, 2), F64)
    xs = jaxrnn.tree_inputs(feats, np.array([1, 2, 3, 4, 5, -1]))
    lstm = jaxrnn.lstm(2, 4, dtype=F64)
    lp = jaxrnn.LSTMParams(p.w_ih, p.w_hh, p.b_ih, p.b_hh, None)
    np.testing.assert_allclose(
        jaxrnn.scan(cell, p, xs)[1], jaxrnn.scan(lstm, lp, feats)[1], rtol=1e-13, atol=1e-15
    )


@pytest.mark.parametrize(
    "parents",
    [np.array([1, -1, 2]), np.array([0, -1]), np.array([2, 2, 1]), np.array([1.0, -1.0])],
)
def test_tree_inputs_rejects_non_topological_trees(parents):
    with pytest.raises(ValueError, match="parents"):
        jaxrnn.tree_inputs(jnp.zeros((len(parents), 2)), parents)


# -------------------------------------------------------------- LSTM and GRU variants


def test_peephole_lstm_without_peepholes_is_the_lstm():
    cell = jaxrnn.peephole_lstm(3, 4, proj_size=2, dtype=F64)
    p = cell.init(jax.random.key(0))
    z = jnp.zeros(4, F64)
    p = p._replace(w_ci=z, w_cf=z, w_co=z)
    lp = jaxrnn.LSTMParams(p.w_ih, p.w_hh, p.b_ih, p.b_hh, p.w_hr)
    xs = jax.random.normal(jax.random.key(1), (5, 3), F64)
    lstm = jaxrnn.lstm(3, 4, proj_size=2, dtype=F64)
    # The LSTM's fused path sums its products in another order: equal to rounding.
    out, ref = jaxrnn.scan(cell, p, xs)[1], jaxrnn.scan(lstm, lp, xs)[1]
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-15)


def test_cho_and_pytorch_gru_differ_only_through_the_reset_gate():
    """Same weights: different outputs, equal ones when r = 1 (reset bias +50)."""
    H = 4
    cho = jaxrnn.cho_gru(3, H, dtype=F64)
    p = cho.init(jax.random.key(0))
    gp = jaxrnn.GRUParams(*p)
    xs = jax.random.normal(jax.random.key(1), (5, 3), F64)
    torch_form = jaxrnn.scan(jaxrnn.gru(3, H, dtype=F64), gp, xs)[1]
    assert float(jnp.abs(jaxrnn.scan(cho, p, xs)[1] - torch_form).max()) > 1e-3
    p1 = p._replace(b_ih=p.b_ih.at[:H].set(50.0))
    gp1 = jaxrnn.GRUParams(*p1)
    np.testing.assert_allclose(
        jaxrnn.scan(cho, p1, xs)[1],
        jaxrnn.scan(jaxrnn.gru(3, H, dtype=F64), gp1, xs)[1],
        rtol=1e-12,
        atol=1e-15,
    )


def test_to_torch_refuses_the_original_form_gru():
    pytest.importorskip("torch")
    cell = jaxrnn.cho_gru(3, 4)
    with pytest.raises(ValueError, match="params must be"):
        jaxrnn.to_torch(cell, cell.init(jax.random.key(0)))


def test_layer_norm_lstm_is_invariant_to_the_scale_of_its_weights():
    """LN(a W x) = LN(W x) for a > 0 (up to eps / var): rescaled weights, same outputs."""
    cell = jaxrnn.layer_norm_lstm(3, 4, eps=1e-12, dtype=F64)
    p = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (6, 3), F64)
    scaled = p._replace(w_ih=7.0 * p.w_ih, w_hh=3.0 * p.w_hh)
    np.testing.assert_allclose(
        jaxrnn.scan(cell, scaled, xs)[1], jaxrnn.scan(cell, p, xs)[1], rtol=1e-8, atol=1e-10
    )
    np.testing.assert_array_equal(p.gamma_ih, 1.0)
    np.testing.assert_array_equal(p.beta_c, 0.0)


def test_lstm_no_forget_is_the_forget_gate_lstm_with_f_fixed_to_one():
    """The 1997 LSTM equals the NumPy forget-gate LSTM (references.lstm) whose forget
    rows are zero with bias +inf, so that f = sigmoid(+inf) = 1 exactly."""
    cell = jaxrnn.lstm_no_forget(3, 4, dtype=F64)
    p = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (9, 3), F64)
    c0 = jaxrnn.LSTMCarry(jnp.zeros(4, F64), jnp.linspace(-1.0, 1.0, 4, dtype=F64))
    _, ys = jaxrnn.scan(cell, p, xs, c0)

    def with_f(w, fill):  # rows i, g, o -> i, f, g, o
        w = np.asarray(w)
        return np.concatenate([w[:4], np.full_like(w[:4], fill), w[4:]])

    lstm_params = jaxrnn.LSTMParams(
        with_f(p.w_ih, 0.0), with_f(p.w_hh, 0.0), with_f(p.b_ih, np.inf), with_f(p.b_hh, 0.0), None
    )
    np.testing.assert_allclose(ys, R.lstm(lstm_params, c0, xs), rtol=1e-12, atol=1e-13)
    # without a forget gate, c only accumulates: c_t - c_{t-1} = i_t g_t
    carry, _ = cell.step(p, c0, xs[0])
    i = jax.nn.sigmoid((p.w_ih @ xs[0] + p.b_ih + p.b_hh)[:4])
    g = jnp.tanh((p.w_ih @ xs[0] + p.b_ih + p.b_hh)[4:8])
    np.testing.assert_allclose(carry.c - c0.c, i * g, rtol=1e-13)
    p2 = jaxrnn.lstm_no_forget(3, 4, input_bias=-2.0, dtype=F64).init(jax.random.key(0))
    np.testing.assert_array_equal(p2.b_ih[:4] + p2.b_hh[:4], -2.0)
    np.testing.assert_array_equal(p2.b_ih[4:], p.b_ih[4:])


def test_cifg_input_gate_is_one_minus_forget_gate():
    """A saturated forget gate (bias +50) keeps c exactly and writes nothing."""
    cell = jaxrnn.cifg_lstm(3, 4, forget_bias=50.0, dtype=F64)
    p = cell.init(jax.random.key(0))
    c0 = jaxrnn.LSTMCarry(jnp.zeros(4, F64), jnp.arange(4, dtype=F64))
    carry, _ = cell.step(p, c0, jnp.ones(3, F64))
    np.testing.assert_allclose(carry.c, c0.c, rtol=1e-15)
