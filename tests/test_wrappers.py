"""Cell wrappers: variational dropout (one mask for the whole sequence), zoneout (each
unit keeps its state with the stated probability), the conditional initial state (also
for jaxrnn.nn layers) and the learned initial state."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references

import jaxrnn
from jaxrnn import grad as G

F64 = jnp.float64


class ProbeParams(NamedTuple):
    w_hh: jax.Array


def _probe_cell(H=6):
    """y_t = w_hh @ 1 + x_t: with w_hh = I the output shows both dropout masks."""

    def init(key):
        return ProbeParams(jnp.eye(H, dtype=F64))

    def step(p, h, x):
        return h, p.w_hh @ h + x

    return jaxrnn.Cell(init, lambda p: jnp.ones(H, F64), step, input_size=H, output_size=H)


def test_variational_dropout_uses_one_mask_for_every_step():
    H, T, p_x, p_h = 6, 9, 0.5, 0.25
    cell = jaxrnn.variational_dropout(_probe_cell(H), input_rate=p_x, recurrent_rate=p_h)
    params = cell.init(jax.random.key(0))

    def masks(key):
        carry0 = cell.initial_carry(params, key=key)
        _, ys_x = jaxrnn.scan(cell, params, jnp.ones((T, H), F64), carry0)  # m_h + m_x
        _, ys_h = jaxrnn.scan(cell, params, jnp.zeros((T, H), F64), carry0)  # m_h
        return ys_x - ys_h, ys_h

    m_x, m_h = jax.vmap(masks)(jax.random.split(jax.random.key(1), 2000))
    m_x, m_h = np.round(np.asarray(m_x), 12), np.round(np.asarray(m_h), 12)
    np.testing.assert_array_equal(m_x, np.repeat(m_x[:, :1], T, axis=1))  # same every step
    np.testing.assert_array_equal(m_h, np.repeat(m_h[:, :1], T, axis=1))
    assert set(np.unique(m_x)) == {0.0, 2.0}
    assert set(np.unique(m_h)) == {0.0, round(4 / 3, 12)}
    # dropped fraction over 2000 x 6 draws: within 4 standard deviations of the rate
    for m, rate in ((m_x[:, 0], p_x), (m_h[:, 0], p_h)):
        n = m.size
        assert abs(np.mean(m == 0) - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    assert np.mean(m_x[:, 0] != m_x[:1, 0]) > 0.1  # the masks differ between sequences


def test_variational_dropout_without_a_key_is_the_cell():
    base = jaxrnn.lstm(3, 4, dtype=F64)
    cell = jaxrnn.variational_dropout(base, input_rate=0.3, recurrent_rate=0.6)
    params = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, 3), F64)
    np.testing.assert_array_equal(  # the wrapper runs base's step, not its fused path
        jaxrnn.scan(cell, params, xs)[1], jaxrnn.scan(base, params, xs, fused=False)[1]
    )
    keyed = cell.initial_carry(params, key=jax.random.key(2))
    assert (
        float(
            jnp.abs(
                jaxrnn.scan(cell, params, xs, keyed)[1] - jaxrnn.scan(base, params, xs)[1]
            ).max()
        )
        > 1e-3
    )


class CounterCarry(NamedTuple):
    h: jax.Array
    c: jax.Array


def _counter_cell(H=5):
    """Every step adds 1 to h and 2 to c, so a unit that kept its value was zoned out."""

    def init(key):
        return ()

    def initial_carry(p):
        return CounterCarry(jnp.zeros(H, F64), jnp.zeros(H, F64))

    def step(p, carry, x):
        new = CounterCarry(carry.h + 1.0, carry.c + 2.0)
        return new, new.h

    return jaxrnn.Cell(init, initial_carry, step, input_size=1, output_size=H)


def test_zoneout_keeps_each_unit_with_the_stated_probability():
    z_h, z_c, T, B, H = 0.3, 0.6, 40, 200, 5
    cell = jaxrnn.zoneout(_counter_cell(H), z_h, cell_rate=z_c)

    def run(key):
        def body(carry, x):
            carry, _ = cell.step((), carry, x)
            return carry, (carry.state.h, carry.state.c)

        return jax.lax.scan(body, cell.initial_carry((), key=key), jnp.zeros((T, 1), F64))[1]

    hs, cs = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), B))
    h_prev = np.concatenate([np.zeros((B, 1, H)), np.asarray(hs)[:, :-1]], axis=1)
    c_prev = np.concatenate([np.zeros((B, 1, H)), np.asarray(cs)[:, :-1]], axis=1)
    kept_h = np.asarray(hs) == h_prev
    kept_c = np.asarray(cs) == c_prev
    n = kept_h.size  # 40 000 unit-steps each
    for kept, z in ((kept_h, z_h), (kept_c, z_c)):
        assert abs(kept.mean() - z) < 4 * np.sqrt(z * (1 - z) / n)
    # independent across steps and between h and c
    same = np.mean(kept_h[:, 1:] == kept_h[:, :-1])
    assert abs(same - (z_h**2 + (1 - z_h) ** 2)) < 0.02
    assert abs(np.mean(kept_h & kept_c) - z_h * z_c) < 0.02
    # reproducible: the same key gives the same run
    again = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), B))
    np.testing.assert_array_equal(again[0], hs)


def test_zoneout_without_a_key_is_the_expectation():
    """Krueger et al.'s test-time rule: h_t = z h_{t-1} + (1 - z) h~_t; rate 0 = the cell."""
    cell = jaxrnn.zoneout(_counter_cell(), 0.3, cell_rate=0.6)
    carry, ys = jaxrnn.scan(cell, (), jnp.zeros((4, 1), F64))
    np.testing.assert_allclose(ys[:, 0], 0.7 * np.arange(1, 5), rtol=1e-14)
    np.testing.assert_allclose(carry.state.c, 4 * 0.4 * 2.0, rtol=1e-14)
    base = jaxrnn.lstm(3, 4, dtype=F64)
    params = base.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, 3), F64)
    np.testing.assert_array_equal(
        jaxrnn.scan(jaxrnn.zoneout(base, 0.0), params, xs)[1],
        jaxrnn.scan(base, params, xs, fused=False)[1],  # the wrapper runs base's step
    )
    cell = jaxrnn.zoneout(base, 0.3, cell_rate=0.5)  # an LSTM, against the NumPy transcription
    ref = references.zoneout_expectation_lstm(0.3, 0.5)(params, cell.initial_carry(params), xs)
    np.testing.assert_allclose(jaxrnn.scan(cell, params, xs)[1], ref, rtol=1e-12, atol=1e-14)


def test_conditional_state_initialises_an_nn_layer():
    """jaxrnn.nn.GRU with h_0 from conditional_state == the conditional GRU cell fed [z; x]."""
    C, I, H, T, B = 2, 3, 4, 5, 3
    cell = jaxrnn.conditional(jaxrnn.gru(I, H, dtype=F64), C)
    params = cell.init(jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (B, C), F64)
    xs = jax.random.normal(jax.random.key(2), (B, T, I), F64)
    zx = jnp.concatenate([jnp.broadcast_to(z[:, None], (B, T, C)), xs], axis=2)
    ys_cell = jax.vmap(lambda u: jaxrnn.scan(cell, params, u)[1])(zx)

    gru = jaxrnn.nn.GRU(I, H, batch_first=True, dtype=F64)
    state = jaxrnn.conditional_state(jnp.zeros((1, H), F64), C)  # one example's h_0 (L*D, H)
    h0 = jax.vmap(state.apply, in_axes=(None, 0))(params.state_map, z)  # (B, 1, H)
    out, _ = gru.apply(((params.cell,),), xs, jnp.swapaxes(h0, 0, 1))
    np.testing.assert_allclose(out, ys_cell, rtol=1e-12, atol=1e-14)
    # h_0 is W z + b, and a reset restarts from it
    np.testing.assert_allclose(h0[0, 0], params.state_map.w[0] @ z[0] + params.state_map.b[0])
    reset = jnp.zeros(T, bool).at[3].set(True)
    _, ys_r = jaxrnn.scan(cell, params, zx[0], reset=reset)
    np.testing.assert_allclose(ys_r[3:], jaxrnn.scan(cell, params, zx[0, 3:])[1], rtol=1e-13)


def test_learned_initial_state_is_trained_by_bptt_and_rtrl_and_keeps_the_diagonal_path():
    cell = jaxrnn.learned_initial_state(jaxrnn.indrnn(3, 4, dtype=F64))
    assert cell.diagonal
    params = cell.init(jax.random.key(0))
    params = params._replace(carry0=jnp.full(4, 0.5, F64))
    head = (jax.random.normal(jax.random.key(1), (2, 4), F64), jnp.zeros(2, F64))
    xs = jax.random.normal(jax.random.key(2), (6, 3), F64)
    targets = jax.random.normal(jax.random.key(3), (6, 2), F64)

    def loss(hd, y, t):
        return 0.5 * jnp.sum((hd[0] @ y + hd[1] - t) ** 2)

    G.check_diagonal(cell, params, jax.random.key(4))
    ref = G.bptt(cell, loss)((params, head), xs, targets)
    fast = G.rtrl(cell, loss)((params, head), xs, targets)  # element-wise path, M_0 = I
    assert float(G.relative_error(fast[1], ref[1])) < 1e-10
    assert float(jnp.abs(ref[1][0].carry0).max()) > 1e-3
    with pytest.raises(ValueError, match="carry_init"):
        jaxrnn.learned_initial_state(jaxrnn.gru(2, 3), carry_init=3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: jaxrnn.variational_dropout(jaxrnn.gru(2, 3), input_rate=1.0), "input_rate"),
        (lambda: jaxrnn.variational_dropout(jaxrnn.gru(2, 3), recurrent_rate=-0.1), "recurrent"),
        (lambda: jaxrnn.variational_dropout(jaxrnn.indrnn(2, 3), recurrent_rate=0.1), "w_hh"),
        (lambda: jaxrnn.variational_dropout("gru"), "cell"),
        (lambda: jaxrnn.zoneout(jaxrnn.gru(2, 3), 1.5), "rate"),
        (lambda: jaxrnn.zoneout(jaxrnn.gru(2, 3), 0.1, cell_rate=0.2), "cell_rate"),
        (lambda: jaxrnn.zoneout(jaxrnn.stack_cells(jaxrnn.gru(2, 3)), 0.1), "zoneout"),
        (lambda: jaxrnn.conditional(jaxrnn.gru(2, 3), 0), "cond_size"),
        (lambda: jaxrnn.conditional(jaxrnn.gru(2, 3), 2, activation="relu"), "activation"),
        (lambda: jaxrnn.conditional_state({}, 2), "template"),
        (lambda: jaxrnn.learned_initial_state(None), "cell"),
    ],
)
def test_bad_wrapper_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda c: jaxrnn.zoneout(c, 0.4, cell_rate=0.3),
        lambda c: jaxrnn.variational_dropout(c, input_rate=0.4, recurrent_rate=0.3),
    ],
    ids=["zoneout", "variational_dropout"],
)
def test_a_reset_restarts_the_state_and_keeps_the_key(wrap):
    """Resets inside one scan equal the episodes run one after another by hand, each
    from the wrapped cell's initial state with the key (and counter) carried over; and
    the regulariser stays random after the reset (it differs from the keyless run)."""
    T, cut = 8, 3
    cell = jaxrnn.stack_cells(wrap(jaxrnn.lstm(3, 4, dtype=F64)), jaxrnn.gru(4, 4, dtype=F64))
    params = cell.init(jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (T, 3), F64)
    zc = wrap(jaxrnn.lstm(3, 4, dtype=F64))
    carry = (zc.initial_carry(params[0], key=jax.random.key(3)), cell.initial_carry(params)[1])
    reset = jnp.zeros(T, bool).at[cut].set(True)
    _, ys = jaxrnn.scan(cell, params, xs, carry, reset=reset)

    c_mid, ys_a = jaxrnn.scan(cell, params, xs[:cut], carry)
    fresh = jaxrnn.lstm(3, 4, dtype=F64).initial_carry(params[0])
    restarted = (c_mid[0]._replace(state=fresh), cell.initial_carry(params)[1])
    _, ys_b = jaxrnn.scan(cell, params, xs[cut:], restarted)
    np.testing.assert_allclose(ys, jnp.concatenate([ys_a, ys_b]), rtol=0, atol=1e-12)

    keyless = (zc.initial_carry(params[0]), cell.initial_carry(params)[1])
    _, ys_keyless = jaxrnn.scan(cell, params, xs, keyless, reset=reset)
    assert np.abs(np.asarray(ys[cut:] - ys_keyless[cut:])).max() > 1e-3
