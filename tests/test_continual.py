"""Continual prediction (Gers et al. 2000): the continual embedded Reber stream is a
valid, unmarked concatenation of embedded Reber strings; the first-error test; and a
small learning check of the forget-gate LSTM on never-reset streams."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.continual import correct_steps, first_error, fit_continual
from jaxrnn.models import linear
from jaxrnn.tasks.continual_reber import continual_reber, continual_reber_stream
from jaxrnn.tasks.reber import SYMBOLS

# the Reber automaton (Cleeremans et al. 1989), written out again for the parser
REBER = {
    0: {"T": 1, "P": 5},
    1: {"S": 1, "X": 2},
    2: {"S": 3, "X": 5},
    5: {"T": 5, "V": 4},
    4: {"V": 3, "P": 2},
}


def parse_stream(text):
    """Split a stream into embedded strings B a B <Reber> E a E, checking each one with
    the automaton; returns the strings (the last may be cut off)."""
    strings, i = [], 0
    while i < len(text):
        m = re.match(r"B([TP])B([TPSXV]*)E", text[i:])
        if m is None:
            break
        state = 0
        for c in m.group(2):
            state = REBER[state][c]  # KeyError: not in the grammar
        assert state == 3, f"inner string {m.group(2)!r} does not reach the end state"
        a = m.group(1)
        j = i + m.end()
        if j + 2 > len(text):
            strings.append(text[i:])
            return strings
        assert text[j : j + 2] == a + "E", "the embedded symbol must come back"
        strings.append(text[i : j + 2])
        i = j + 2
    assert i >= len(text) or "B".startswith(text[i:][:1]), f"unparsed rest {text[i:]!r}"
    return strings


def test_continual_stream_is_a_grammatical_unmarked_concatenation():
    x, y, legal, start = continual_reber_stream(3000, np.random.default_rng(0))
    text = "".join(SYMBOLS[k] for k in [*x, y[-1]])
    strings = parse_stream(text)
    assert len(strings) > 150 and text.startswith("B")
    np.testing.assert_array_equal(
        np.flatnonzero(start), np.cumsum([0] + [len(s) for s in strings[:-1]])
    )
    np.testing.assert_array_equal(x[1:], y[:-1])
    assert legal[np.arange(3000), y].all(), "every next symbol is a legal successor"
    assert set(legal.sum(axis=1)) == {1, 2}
    # after each string's final E only B may follow: no reset, no marker
    ends = np.flatnonzero((x == SYMBOLS.index("E")) & (np.roll(x, 1) != SYMBOLS.index("E")))
    for t in np.flatnonzero(y == SYMBOLS.index("B")):
        assert legal[t].tolist() == [c == "B" for c in SYMBOLS]
    assert len(ends) > 0


def test_dataset_shapes_and_independent_streams():
    d = continual_reber(num_streams=4, stream_symbols=100, test_symbols=500, seed=1)
    assert d.train["x"].shape == (4, 100) and d.test["legal"].shape == (1, 500, 7)
    assert np.all(d.train["x"][:, 0] == SYMBOLS.index("B"))
    assert not np.array_equal(d.train["x"][0], d.train["x"][1])


def test_correct_steps_and_first_error():
    legal = jnp.array([[True, True, False], [False, True, False], [True, False, True]])
    logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 2.0, 0.5]])
    np.testing.assert_array_equal(correct_steps(logits, legal), [True, True, False])
    # ties are broken by index, never counted twice
    assert not bool(correct_steps(jnp.zeros(3), jnp.array([False, True, False])))

    cell = jaxrnn.rnn(3, 3)  # made to echo its one-hot input: the top symbol is x_t
    params = cell.init(jax.random.key(0))
    params = params._replace(
        w_ih=10 * jnp.eye(3), w_hh=jnp.zeros((3, 3)), b_ih=jnp.zeros(3), b_hh=jnp.zeros(3)
    )
    head = lambda _, ys: ys  # noqa: E731
    xs = np.array([0, 1, 2, 1])
    lg = np.eye(3, dtype=bool)[[0, 1, 0, 1]]
    assert first_error(cell, head, (params, None), xs, lg) == 2
    assert first_error(cell, head, (params, None), xs[:2], lg[:2]) == 2


def test_forget_gate_lstm_learns_the_continual_stream():
    """After 320 TBPTT updates the forget-gate LSTM's next-symbol loss on never-reset
    streams is below 0.55 nats: far below ln 7 = 1.95 (a uniform guess) and the 1.28
    nats of the best prediction from the current symbol alone (the bigram entropy of
    the stream); the floor, the grammar's entropy, is about 0.41."""
    d = continual_reber(num_streams=64, stream_symbols=1600, test_symbols=10, seed=0)
    cell = jaxrnn.lstm(7, 8, forget_bias=1.0, dtype=jnp.float32)
    head_init, head = linear(8, 7)
    params = (cell.init(jax.random.key(0)), head_init(jax.random.key(1)))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    res = fit_continual(
        cell,
        head,
        params,
        d.train["x"],
        d.train["y"],
        chunk=40,
        batch_size=8,
        optimizer=opt,
        num_symbols=7,
    )
    assert res.losses.shape == (64 // 8 * 40,)
    assert res.losses[0] > 1.8 and np.mean(res.losses[-50:]) < 0.55


def test_fit_continual_rejects_bad_arguments():
    cell = jaxrnn.lstm(7, 4)
    hi, head = linear(4, 7)
    p = (cell.init(jax.random.key(0)), hi(jax.random.key(1)))
    xs = np.zeros((4, 10), np.int8)
    with pytest.raises(ValueError, match="chunk"):
        fit_continual(
            cell, head, p, xs, xs, chunk=3, batch_size=2, optimizer=optax.adam(1e-3), num_symbols=7
        )
    with pytest.raises(ValueError, match="batch_size"):
        fit_continual(
            cell, head, p, xs, xs, chunk=5, batch_size=3, optimizer=optax.adam(1e-3), num_symbols=7
        )


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--steps", "7"], "multiple of stream_symbols"),
        (["--cell", "gru"], "lstm_no_forget"),
    ],
)
def test_cli_continual_reber_bad_input_exits_2(capsys, argv, words):
    from jaxrnn import cli

    code = cli.main(["train", "--task", "continual_reber", "--hidden", "2", *argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in out + err


def test_run_continual_reber_reports_the_first_error():
    from jaxrnn.applications import run_continual_reber

    r = run_continual_reber(cell="lstm_no_forget", hidden=4, steps=40, test_symbols=2000)
    m = r["metrics"]
    assert 0 <= m["symbols_before_first_error"] <= 2000
    assert m["solved"] == float(m["symbols_before_first_error"] == 2000)
    assert r["num_params"] == 3 * 4 * (7 + 4) + 6 * 4 + 7 * 4 + 7
    # the external reset reaches training and the test
    r2 = run_continual_reber(
        cell="lstm_no_forget", hidden=4, steps=40, test_symbols=2000, external_reset=True
    )
    assert r2["metrics"]["final_train_loss"] != m["final_train_loss"]


def test_external_reset_restarts_the_state_at_string_starts():
    """first_error with resets equals running each string alone from the initial state."""
    cell = jaxrnn.lstm_no_forget(7, 3)
    hi, head = linear(3, 7)
    p = (cell.init(jax.random.key(0)), hi(jax.random.key(1)))
    x, _, legal, start = continual_reber_stream(60, np.random.default_rng(2))
    onehot = jax.nn.one_hot(x, 7, dtype=jnp.float32)
    _, z_reset = jaxrnn.scan(cell, p[0], onehot, reset=jnp.asarray(start))
    b, e = np.flatnonzero(start)[1:3]  # the second string, run alone
    _, z_alone = jaxrnn.scan(cell, p[0], onehot[b:e])
    np.testing.assert_allclose(z_reset[b:e], z_alone, rtol=1e-6, atol=1e-7)
    assert (
        np.abs(np.asarray(z_reset[b:e]) - np.asarray(jaxrnn.scan(cell, p[0], onehot)[1][b:e])).max()
        > 1e-3
    )
    lg = np.asarray(correct_steps(head(p[1], z_reset), jnp.asarray(legal)))
    expect = int(np.flatnonzero(~lg)[0]) if (~lg).any() else 60
    assert first_error(cell, head, p, x, legal, reset=start) == expect
