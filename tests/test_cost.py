"""Parameter and FLOP counts against seed 004's worked counts, Sak et al.'s LSTMP
formula and hand counts of the docstring equations (every registered cell's docstring
parameter count is checked in test_cells.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxrnn


def test_seed_004_worked_counts():
    """Seed 004, input 3, 2 units: a GRU has 6 weight matrices (3 of 3x2 for x, 3 of 2x2
    for h) and 3 biases of 2: 36 parameters; an LSTM 8 matrices and 4 biases: 48. PyTorch's
    layout (ours) has a second bias per gate: 42 and 56."""
    i, n = 3, 2
    assert jaxrnn.count_params(jaxrnn.gru(i, n, bias=False)) + 3 * n == 36
    assert jaxrnn.count_params(jaxrnn.lstm(i, n, bias=False)) + 4 * n == 48
    assert jaxrnn.count_params(jaxrnn.gru(i, n)) == 36 + 3 * n
    assert jaxrnn.count_params(jaxrnn.lstm(i, n)) == 48 + 4 * n
    # "each weight matrix contains input x neurons parameters, each bias neurons"
    p = jaxrnn.gru(i, n).init(jax.random.key(0))
    assert p.w_ih.size == 3 * i * n and p.w_hh.size == 3 * n * n


@pytest.mark.parametrize(("n_i", "n_c", "n_r", "n_o"), [(40, 32, 8, 10), (3, 7, 5, 2)])
def test_sak_lstmp_parameter_count(n_i, n_c, n_r, n_o):
    """Sak et al. (2014), without biases: LSTM N = 4 n_c^2 + 4 n_i n_c + n_c n_o + 3 n_c;
    LSTMP N = 4 n_c n_r + 4 n_i n_c + n_r n_o + n_c n_r + 3 n_c (the 3 n_c are peepholes,
    n_o the output layer, here a bias-free readout)."""
    lstm = jaxrnn.peephole_lstm(n_i, n_c, bias=False)
    lstmp = jaxrnn.peephole_lstm(n_i, n_c, proj_size=n_r, bias=False)
    readout = lambda width: width * n_o  # noqa: E731
    assert jaxrnn.count_params(lstm) + readout(n_c) == (
        4 * n_c * n_c + 4 * n_i * n_c + n_c * n_o + 3 * n_c
    )
    assert jaxrnn.count_params(lstmp) + readout(n_r) == (
        4 * n_c * n_r + 4 * n_i * n_c + n_r * n_o + n_c * n_r + 3 * n_c
    )
    # and what the projection buys: fewer recurrent weights when n_r < n_c
    assert jaxrnn.count_params(jaxrnn.lstm(n_i, n_c, proj_size=n_r)) < jaxrnn.count_params(
        jaxrnn.lstm(n_i, n_c)
    )


I, H, P = 3, 5, 2


@pytest.mark.parametrize(
    ("cell", "flops"),
    [
        (jaxrnn.rnn(I, H), 2 * H * (I + H) + 4 * H),
        (jaxrnn.rnn(I, H, bias=False), 2 * H * (I + H) + 2 * H),
        (jaxrnn.gru(I, H), 6 * H * (I + H) + 17 * H),
        (jaxrnn.lstm(I, H), 8 * H * (I + H) + 21 * H),
        (jaxrnn.lstm(I, H, proj_size=P), 8 * H * (I + P) + 21 * H + 2 * P * H),
        (jaxrnn.indrnn(I, H), 2 * H * I + 4 * H),
    ],
    ids=["rnn", "rnn_nobias", "gru", "lstm", "lstmp", "indrnn"],
)
def test_flops_per_step_equal_hand_counts_of_the_equations(cell, flops):
    """2 per multiply-add of each matrix-vector product, 1 per element-wise operation of
    the docstring equations (LSTM: 12H bias and gate sums, 4H gate nonlinearities, 3H
    for c, 2H for h). Sak et al.: O(N) per step, here 2N + O(H) with N the weights."""
    assert jaxrnn.count_flops(cell) == flops


def test_flops_per_sequence_and_for_layers():
    cell = jaxrnn.lstm(I, H, proj_size=P)
    per_step = jaxrnn.count_flops(cell)
    assert jaxrnn.count_flops(cell, seq_len=50) == 50 * per_step
    step_only = cell._replace(sequence=None)  # the engine scans step: T times its FLOPs
    assert jaxrnn.count_flops(jaxrnn.recurrent(step_only), seq_len=50) == 50 * per_step
    bi = jaxrnn.bidirectional(step_only)
    assert jaxrnn.count_flops(bi, seq_len=10) == 2 * 10 * per_step
    weights = 4 * H * (I + P) + P * H  # Sak's N for this cell, without peepholes
    # The fused path (the default) folds the two biases and shares element-wise work:
    # fewer FLOPs than T steps, never fewer than its T x 2N of matrix products.
    fused = jaxrnn.count_flops(jaxrnn.recurrent(cell), seq_len=50)
    assert 50 * 2 * weights <= fused < 50 * per_step
    assert per_step == 2 * weights + 21 * H
    # a plain function: (8, 3) @ (3,) is 48 FLOPs, tanh 8
    f = lambda w, x: jnp.tanh(w @ x)  # noqa: E731
    assert jaxrnn.count_flops(f, jnp.ones((8, 3)), jnp.ones(3)) == 48 + 8


def test_count_params_of_params_layers_and_nn_modules():
    lstm = jaxrnn.nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)
    per_dir_0 = 4 * 6 * (4 + 3) + 8 * 6 + 3 * 6
    per_dir_1 = 4 * 6 * (6 + 3) + 8 * 6 + 3 * 6  # layer 1 reads 2 x proj_size
    assert jaxrnn.count_params(lstm) == 2 * (per_dir_0 + per_dir_1)
    params = jaxrnn.gru(3, 4).init(jax.random.key(0))
    assert jaxrnn.count_params(params) == 3 * 4 * 7 + 24
    assert jaxrnn.count_params(jaxrnn.stack(jaxrnn.gru(3, 4), jaxrnn.rnn(4, 2))) == 108 + 16


def test_count_errors():
    with pytest.raises(ValueError, match="seq_len"):
        jaxrnn.count_flops(jaxrnn.recurrent(jaxrnn.gru(2, 3)))
    with pytest.raises(ValueError, match="seq_len"):
        jaxrnn.count_flops(jaxrnn.gru(2, 3), seq_len=0)
    with pytest.raises(ValueError, match="while"):
        jaxrnn.count_flops(lambda x: jax.lax.while_loop(lambda v: v < 3, lambda v: v + 1.0, x), 0.0)
    with pytest.raises(ValueError, match="obj"):
        jaxrnn.count_flops(3)
