"""PyTorch's own RNN test scenarios, ported to :mod:`jaxrnn.nn` and :func:`jaxrnn.from_torch`.

Sources (torch's test suite, read and rewritten here; torch itself, 2.13 CPU, is the
reference where a number is compared):

- ``test/test_nn.py``: ``test_RNN_cell``, ``test_RNN_cell_forward_input_size`` /
  ``_hidden_size`` / ``_zero_hidden_size``, ``test_RNN_input_size_zero`` (an empty
  batch), ``test_rnn_args_check``, ``test_projections_lstm_args_check``,
  ``test_rnn_initial_hidden_state``, ``test_RNN_dropout``, ``test_RNN_dropout_state``,
  ``test_RNN_change_dropout``, ``test_RNN_nonlinearity``, ``_test_variable_sequence``;
- ``test/nn/test_packed_sequence.py``: ``test_pad_sequence``, ``test_total_length``;
- ``torch/testing/_internal/common_modules.py``: the ``module_db`` sample inputs of
  ``nn.RNN``/``GRU``/``LSTM`` (unbatched input equals a batch of one, with and without
  ``hx``) and their error inputs; ``test_modules.py``'s ``test_pickle``.

Not ported (they do not apply): CUDA/cuDNN, ``weight_norm``, ``flatten_parameters``,
``PackedSequence`` internals (jaxrnn takes ``lengths`` instead of packed data).

Where jaxrnn differs from torch on purpose the test says so: ``hidden_size=0`` cells are
refused with a clear error (README: a cell with no state is a configuration mistake in
a JAX library, where shapes are static); torch's ``RuntimeError`` for a bad shape is a
``ValueError`` here, raised before tracing; modules are immutable, so "changing dropout"
is ``dataclasses.replace``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jaxrnn  # noqa: E402
from jaxrnn import nn  # noqa: E402

F64 = jnp.float64
TDT = torch.float64
KEY = jax.random.key(0)


def _t(a):
    return torch.from_numpy(np.array(a, copy=True))


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), rtol=tol, atol=tol)


# ------------------------------------------------------------------------ cells


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_RNN_cell(kind, bias):
    """test_RNN_cell: six steps of a cell on a batch of 3, outputs and input gradients."""
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(10, 20, bias=bias, dtype=TDT)
    cell, params = jaxrnn.from_torch(module)
    x = torch.randn(3, 10, dtype=TDT, requires_grad=True)
    hx = torch.randn(3, 20, dtype=TDT)
    state = (hx, hx.clone()) if kind == "LSTMCell" else hx
    for _ in range(6):
        state = module(x, state)
    out = state[0] if kind == "LSTMCell" else state
    out.sum().backward()

    def run(xb):
        h = jnp.asarray(hx.numpy())
        carry = jaxrnn.LSTMCarry(h, h) if kind == "LSTMCell" else h
        step = jax.vmap(cell.step, in_axes=(None, 0, 0))
        for _ in range(6):
            carry, y = step(params, carry, xb)
        return y

    xj = jnp.asarray(x.detach().numpy())
    (_, y), g = jax.value_and_grad(lambda a: (run(a).sum(), run(a)), has_aux=True)(xj)
    _close(y, out)
    _close(g, x.grad)


def _zeros(tree):
    """Arrays of zeros shaped like ``tree``'s leaves (no random draws to compile)."""
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), tree)


def test_RNN_cell_forward_input_and_hidden_size():
    """test_RNN_cell_forward_input_size / _hidden_size: a wrong width is an error."""
    for kind in ("rnn", "gru", "lstm"):
        cell = getattr(jaxrnn, kind)(10, 20, dtype=F64)
        p = _zeros(jax.eval_shape(cell.init, KEY))
        c = _zeros(jax.eval_shape(cell.initial_carry, p))
        with pytest.raises(ValueError, match=r"x must have shape \(10,\)"):
            cell.step(p, c, jnp.ones(11, F64))
        bad = jnp.ones(21, F64)
        bad_carry = jaxrnn.LSTMCarry(bad, bad) if kind == "lstm" else bad
        with pytest.raises(ValueError, match=r"must have shape \(20,\), got \(21,\)"):
            cell.step(p, bad_carry, jnp.ones(10, F64))
    torch_cell = torch.nn.GRUCell(10, 20)
    with pytest.raises(RuntimeError):  # torch refuses the same inputs
        torch_cell(torch.randn(3, 11), torch.randn(3, 20))


def test_RNN_cell_zero_hidden_size_is_refused():
    """test_RNN_cell_forward_zero_hidden_size: torch's cells accept hidden_size=0 (its
    nn.RNN/GRU/LSTM layers do not); jaxrnn refuses it for cells too (README)."""
    assert torch.nn.GRUCell(10, 0)(torch.randn(3, 10), torch.randn(3, 0)).shape == (3, 0)
    for kind in ("rnn", "gru", "lstm"):
        with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
            getattr(jaxrnn, kind)(10, 0)
    for layer in (nn.RNN, nn.GRU, nn.LSTM):
        with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
            layer(10, 0)
        with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
            getattr(torch.nn, layer.__name__)(10, 0)


# ----------------------------------------------------------------------- layers


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_RNN_input_size_zero(mode):
    """test_RNN_input_size_zero: an empty batch (T, 0, I) gives (T, 0, H)."""
    module = getattr(torch.nn, mode)(input_size=3, hidden_size=4, dtype=TDT)
    layer, params = jaxrnn.from_torch(module)
    out, hn = layer.apply(params, jnp.zeros((5, 0, 3), F64))
    t_out, t_hn = module(torch.zeros(5, 0, 3, dtype=TDT))
    assert out.shape == tuple(t_out.shape) == (5, 0, 4)
    for a, b in zip(jax.tree_util.tree_leaves(hn), (t_hn if mode == "LSTM" else (t_hn,))):
        assert a.shape == tuple(b.shape) == (1, 0, 4)


def _bad_shapes(mode, proj_size=0):
    """test_rnn_args_check / test_projections_lstm_args_check: (input, hx) pairs that
    torch refuses, built as torch's test builds them."""
    I, H, L, B, T, bad = 3, 5, 2, 4, 6, 7
    R = proj_size or H
    x_ok, h_ok, c_ok = (T, B, I), (L, B, R), (L, B, H)

    def upd(shape, dim, size):
        return tuple(size if i == dim else s for i, s in enumerate(shape))

    cases = [(upd(x_ok, 1, bad), h_ok), (x_ok, upd(h_ok, 1, bad))]
    cases += [(upd(x_ok, 2, bad), h_ok), (x_ok, upd(h_ok, 2, bad)), (x_ok, upd(h_ok, 0, bad))]
    out = []
    for xs, hs in cases:
        if mode != "LSTM":
            out.append((xs, (hs,)))
        elif hs == h_ok:
            out.append((xs, (hs, c_ok)))
        else:  # a bad h with a good c, and a good h with a bad c of the same kind
            out += [(xs, (hs, c_ok)), (xs, (h_ok, upd(c_ok, *_diff(h_ok, hs))))]
    return out


def _diff(a, b):
    (i,) = [k for k in range(len(a)) if a[k] != b[k]]
    return i, b[i]


@pytest.mark.parametrize("mode, proj", [("RNN", 0), ("GRU", 0), ("LSTM", 0), ("LSTM", 2)])
def test_rnn_args_check(mode, proj):
    kw = {"proj_size": proj} if proj else {}
    module = getattr(torch.nn, mode)(3, 5, 2, dtype=TDT, **kw)
    layer, params = jaxrnn.from_torch(module)
    for xs, hs in _bad_shapes(mode, proj):
        x = np.zeros(xs)
        hx = tuple(np.zeros(s) for s in hs)
        with pytest.raises(RuntimeError):
            module(_t(x), tuple(map(_t, hx)) if mode == "LSTM" else _t(hx[0]))
        with pytest.raises(ValueError, match="must have shape"):
            layer.apply(params, jnp.asarray(x), hx if mode == "LSTM" else jnp.asarray(hx[0]))


@pytest.mark.parametrize("mode, proj", [("LSTM", 3)])
def test_rnn_initial_hidden_state(mode, proj):
    """test_rnn_initial_hidden_state (and the projections variant): hx=None is zeros."""
    kw = {"proj_size": proj} if proj else {}
    layer = getattr(nn, mode)(6, 4 + proj, 2, dtype=F64, **kw)
    p = layer.init(KEY)
    x = jax.random.normal(KEY, (5, 7, 6), F64)
    out1, h1 = layer.apply(p, x, layer.initial_state(7))
    out2, h2 = layer.apply(p, x)
    np.testing.assert_array_equal(out1, out2)
    for a, b in zip(jax.tree_util.tree_leaves(h1), jax.tree_util.tree_leaves(h2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [0.0, 0.276, 0.731, 1.0])
def test_RNN_dropout(p):
    """test_RNN_dropout: with all-ones weights, relu and no bias, layer 2's output is
    10 * (number of kept units) / (1 - p): exactly 10000 without dropout (or in
    evaluation mode, checked once: it does not depend on p), 0 at p = 1, near 10000
    otherwise."""
    rnn = nn.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu", dtype=F64)
    params = _zeros(jax.eval_shape(rnn.init, KEY))
    params = jax.tree_util.tree_map(lambda a: np.ones_like(a), params)
    x = jnp.ones((1, 1, 10), F64)
    hx = jnp.zeros((2, 1, 1000), F64)
    for train in (True, False) if p == 0.731 else (True,):
        output, hy = rnn.apply(params, x, hx, key=jax.random.key(3) if train else None)
        v = np.asarray(output)
        assert v.min() == v.max()
        val = v[0, 0, 0]
        if p == 0 or not train:
            assert val == 10000
        elif p == 1:
            assert val == 0
        else:
            assert 8000 < val < 12000
            denorm = (val * (1 - p)) % 10
            assert min(denorm, 10 - denorm) < 1e-2
        hy = np.asarray(hy)
        assert hy[0].min() == hy[0].max() and hy[1].min() == hy[1].max()
        assert hy[0, 0, 0] == 10 and hy[1, 0, 0] == val


@pytest.mark.parametrize("p", [0.0, 0.1234])
def test_RNN_dropout_state(p):
    """test_RNN_dropout_state: two training-mode calls differ (new masks) iff p > 0."""
    rnn = nn.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu", dtype=F64)
    params = rnn.init(KEY)
    x = jax.random.uniform(jax.random.key(1), (1, 1, 100), F64)
    hx = jax.random.uniform(jax.random.key(2), (2, 1, 100), F64)
    for train in (True, False):
        keys = (jax.random.key(5), jax.random.key(6)) if train else (None, None)
        (o1, h1), (o2, h2) = (rnn.apply(params, x, hx, key=k) for k in keys)
        same = bool(jnp.all(o1 == o2)) and bool(jnp.all(h1 == h2))
        assert same == (p == 0 or not train)


def test_RNN_change_dropout():
    """test_RNN_change_dropout: a layer with another dropout (here a new immutable
    layer) uses it from the next call; p = 1 zeroes layer 2's input, p = 0 keeps it."""
    rnn = nn.RNN(4, 5, 2, dtype=F64)
    params = rnn.init(KEY)
    x = jax.random.normal(KEY, (3, 2, 4), F64)
    ref, _ = rnn.apply(params, x, key=jax.random.key(1))
    for p in (0.0, 1.0):
        changed = dataclasses.replace(rnn, dropout=p)
        out, _ = changed.apply(params, x, key=jax.random.key(1))
        if p == 0:
            np.testing.assert_array_equal(out, ref)
        if p == 1:  # layer 2 sees zeros: its output does not depend on x
            other, _ = changed.apply(params, x + 1.0, key=jax.random.key(2))
            np.testing.assert_array_equal(out, other)


def test_RNN_nonlinearity():
    """test_RNN_nonlinearity and _passed_as_arg."""
    assert nn.RNN(1, 10).nonlinearity == "tanh"
    assert nn.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    assert nn.RNN(2, 3, 1, "relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(1, 10, nonlinearity="garbage")


# ------------------------------------------------------------- variable lengths


def _test_variable_sequence(lengths, proj_size, default_hidden):
    """_test_variable_sequence: a 2-layer bidirectional LSTM over padded sequences with
    ``lengths`` equals running each sequence alone (torch's test compares torch's packed
    run with its separate runs; here jaxrnn's run with ``lengths`` is compared with
    torch's separate runs and torch's packed run): outputs, states, and the gradients of
    the summed output with respect to the input and every parameter."""
    I, H, L = 3, 4, 2
    kw = {"proj_size": proj_size} if proj_size else {}
    module = torch.nn.LSTM(I, H, L, bidirectional=True, dtype=TDT, **kw)
    layer, params = jaxrnn.from_torch(module)
    R = proj_size or H
    T, B = max(lengths), len(lengths)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(T, B, I))
    hx = None
    if not default_hidden:
        hx = (rng.normal(size=(2 * L, B, R)), rng.normal(size=(2 * L, B, H)))

    # torch, each sequence alone
    x_t = _t(x).requires_grad_(True)
    outs, hs, cs = [], [], []
    for b, ln in enumerate(lengths):
        h0 = None if hx is None else tuple(_t(a[:, b : b + 1]) for a in hx)
        out, (h, c) = module(x_t[:ln, b : b + 1], h0)
        outs.append(torch.nn.functional.pad(out, (0, 0, 0, 0, 0, T - ln)))
        hs.append(h)
        cs.append(c)
    seq_out, seq_h, seq_c = torch.cat(outs, 1), torch.cat(hs, 1), torch.cat(cs, 1)
    seq_out.sum().backward()
    grads = [x_t.grad] + [q.grad for q in module.parameters()]
    # torch, packed
    pk = torch.nn.utils.rnn.pack_padded_sequence(_t(x), list(lengths), enforce_sorted=False)
    t_out, (t_h, t_c) = module(pk, None if hx is None else tuple(map(_t, hx)))
    t_out, t_len = torch.nn.utils.rnn.pad_packed_sequence(t_out, total_length=T)
    assert t_len.tolist() == list(lengths)

    n = jnp.asarray(lengths)
    h0 = None if hx is None else tuple(map(jnp.asarray, hx))

    def run(params, x):
        out, (h, c) = layer.apply(params, x, h0, lengths=n)
        return out.sum(), (out, h, c)

    (_, got), (g_params, g_x) = jax.value_and_grad(run, argnums=(0, 1), has_aux=True)(
        params, jnp.asarray(x)
    )
    for u, v, w in zip(got, (seq_out, seq_h, seq_c), (t_out, t_h, t_c)):
        _close(u, v)
        _close(u, w)
    sd = jaxrnn.state_dict(layer, g_params)  # parameter gradients in torch's order
    for u, v in zip([g_x, *sd.values()], grads):
        _close(u, v)


@pytest.mark.parametrize(
    "lengths, proj_size, default_hidden",
    [
        ([5], 0, True),
        ([10, 10, 6, 2, 2, 1, 1], 2, False),
        ([2, 1, 3, 2, 10, 5, 3], 0, False),
    ],
)
def test_variable_sequence(lengths, proj_size, default_hidden):
    _test_variable_sequence(lengths, proj_size, default_hidden)


def test_total_length():
    """test_total_length: outputs keep T steps (pad_packed_sequence(total_length=T))."""
    module = torch.nn.GRU(3, 4, dtype=TDT)
    layer, params = jaxrnn.from_torch(module)
    x = np.random.default_rng(1).normal(size=(8, 3, 3))
    lengths = [5, 2, 3]
    out, _ = layer.apply(params, jnp.asarray(x), lengths=jnp.asarray(lengths))
    pk = torch.nn.utils.rnn.pack_padded_sequence(_t(x), lengths, enforce_sorted=False)
    t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(module(pk)[0], total_length=8)
    assert out.shape == tuple(t_out.shape) == (8, 3, 4)
    _close(out, t_out)


# ------------------------------------------------------------------ pad_sequence


def test_pad_sequence():
    """test_pad_sequence: jaxrnn.pad_sequences equals torch's pad_sequence (and returns
    the lengths), batch first or not, with a padding value, for 1-4-D sequences."""
    pad = torch.nn.utils.rnn.pad_sequence
    a, b, c = np.array([1, 2, 3]), np.array([4, 5]), np.array([6])
    for seqs in ([b, a, c], [a, b, c]):
        for batch_first in (True, False):
            for value in (0, 1):
                got, lengths = jaxrnn.pad_sequences(
                    seqs, batch_first=batch_first, padding_value=value
                )
                want = pad([_t(s) for s in seqs], batch_first, value)
                np.testing.assert_array_equal(got, want.numpy())
                assert lengths.tolist() == [len(s) for s in seqs]
    rng = np.random.default_rng(0)
    for num_dim in (0, 1, 2, 3):
        seqs = [rng.random((i * i, 5, *[4] * num_dim)) for i in range(1, 10)]
        rng.shuffle(seqs)
        for batch_first in (True, False):
            got, _ = jaxrnn.pad_sequences(seqs, batch_first=batch_first)
            np.testing.assert_array_equal(got, pad([_t(s) for s in seqs], batch_first).numpy())
    with pytest.raises(ValueError, match=r"sequences\[1\] has feature shape"):
        jaxrnn.pad_sequences([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="non-empty list"):
        jaxrnn.pad_sequences([])


def test_pad_sequences_feeds_a_layer():
    """The helper's output is what jaxrnn.nn layers take: padded batch plus lengths."""
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(n, 3)) for n in (4, 1, 6)]
    module = torch.nn.LSTM(3, 2, dtype=TDT)
    layer, params = jaxrnn.from_torch(module)
    x, lengths = jaxrnn.pad_sequences(seqs)
    out, _ = layer.apply(params, x, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_sequence([_t(s) for s in seqs], enforce_sorted=False)
    t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(module(packed)[0])
    _close(out, t_out)


# ---------------------------------------------------------------- module_db


def _module_db_samples(mode):
    """common_modules.module_inputs_torch_nn_{RNN_GRU,LSTM}: constructor arguments and
    unbatched inputs (without and with hx) of the no-batch-dim samples."""
    flags = (False, True)
    heads = itertools.product(("relu", "tanh") if mode == "RNN" else (None,), flags, flags, flags)
    projs = (0, 2) if mode == "LSTM" else (0,)
    for (nl, bias, bf, bidir), proj in itertools.product(heads, projs):
        D = 2 if bidir else 1
        for hidden, with_hx in ((2 + (proj > 0), False), (3, True)):
            kw = dict(input_size=2, hidden_size=hidden, num_layers=2, batch_first=bf, bias=bias)
            kw["bidirectional"] = bidir
            if nl:
                kw["nonlinearity"] = nl
            if proj:
                kw["proj_size"] = proj
            yield kw, (2 * D, proj or hidden) if with_hx else None


def _covering(samples):
    """Rows in which every pair of values of the boolean options occurs (CI); the full
    product runs as a slow test."""
    keys = ("nonlinearity", "bias", "batch_first", "bidirectional", "proj_size")

    def pairs(sample):
        kw, hx = sample
        vals = [(k, kw.get(k)) for k in keys] + [("hx", hx is not None)]
        return set(itertools.combinations(vals, 2))

    need = set().union(*map(pairs, samples))
    rows, covered = [], set()
    while covered != need:  # greedy: the sample with the most new pairs first
        best = max(samples, key=lambda smp: len(pairs(smp) - covered))
        rows.append(best)
        covered |= pairs(best)
    return rows


def _check_sample(mode, kw, hx_shape):
    module = getattr(torch.nn, mode)(**kw, dtype=TDT)
    layer, params = jaxrnn.from_torch(module)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2))
    hx = None
    if hx_shape is not None:
        h = rng.normal(size=hx_shape)
        hx = (h, rng.normal(size=(hx_shape[0], kw["hidden_size"]))) if mode == "LSTM" else h
    to_j = lambda v: None if v is None else jax.tree_util.tree_map(jnp.asarray, v)  # noqa: E731
    to_t = lambda v: None if v is None else (tuple(map(_t, v)) if mode == "LSTM" else _t(v))  # noqa: E731
    out, hn = layer.apply(params, jnp.asarray(x), to_j(hx))
    t_out, t_hn = module(_t(x), to_t(hx))
    _close(out, t_out)
    for u, v in zip(jax.tree_util.tree_leaves(hn), (t_hn if mode == "LSTM" else (t_hn,))):
        _close(u, v)
    # no_batch_dim_reference: the unbatched result is a batch of one, squeezed
    axis = 0 if kw["batch_first"] else 1
    hb = None if hx is None else jax.tree_util.tree_map(lambda a: jnp.asarray(a)[:, None], hx)
    out_b, hn_b = layer.apply(params, jnp.expand_dims(jnp.asarray(x), axis), hb)
    np.testing.assert_allclose(jnp.squeeze(out_b, axis), out, rtol=1e-12, atol=1e-14)
    for u, v in zip(jax.tree_util.tree_leaves(hn_b), jax.tree_util.tree_leaves(hn)):
        np.testing.assert_allclose(u[:, 0], v, rtol=1e-12, atol=1e-14)


SAMPLES = {m: list(_module_db_samples(m)) for m in ("RNN", "GRU", "LSTM")}
CI_SAMPLES = [(m, kw, hx) for m in SAMPLES for kw, hx in _covering(SAMPLES[m])]
SLOW_SAMPLES = [
    (m, kw, hx) for m in SAMPLES for kw, hx in SAMPLES[m] if (m, kw, hx) not in CI_SAMPLES
]


@pytest.mark.parametrize("mode, kw, hx_shape", CI_SAMPLES)
def test_module_db_samples(mode, kw, hx_shape):
    _check_sample(mode, kw, hx_shape)


@pytest.mark.slow
@pytest.mark.parametrize("mode, kw, hx_shape", SLOW_SAMPLES)
def test_module_db_samples_full_product(mode, kw, hx_shape):
    _check_sample(mode, kw, hx_shape)


@pytest.mark.parametrize(
    "mode, args, kwargs, torch_words, words",
    [
        ("RNN", (10, 0, 1), {}, "hidden_size must be greater than zero", "hidden_size"),
        ("GRU", (10, 10, 0), {}, "num_layers must be greater than zero", "num_layers"),
        ("LSTM", (10, 0, 1), {}, "hidden_size must be greater than zero", "hidden_size"),
        ("LSTM", (10, 10, 0), {}, "num_layers must be greater than zero", "num_layers"),
        ("LSTM", (10, 10, 1), {"proj_size": -1}, "proj_size should be a positive", "proj_size"),
        ("LSTM", (10, 10, 1), {"proj_size": 10}, "proj_size has to be smaller", "proj_size"),
        ("GRU", (10, 10, 2), {"dropout": 1.5}, "dropout should be a number", "dropout"),
        ("RNN", (10, 10, 2), {"dropout": -0.1}, "dropout should be a number", "dropout"),
    ],
)
def test_module_db_error_inputs(mode, args, kwargs, torch_words, words):
    """module_error_inputs_torch_nn_{RNN_GRU,LSTM}: the same constructions fail in both."""
    with pytest.raises(ValueError, match=torch_words):
        getattr(torch.nn, mode)(*args, **kwargs)
    with pytest.raises(ValueError, match=words):
        getattr(nn, mode)(*args, **kwargs)


def test_dropout_one_is_converted_like_torch():
    """torch accepts dropout=1.0 (so such a module converts) and drops everything in
    training mode."""
    module = torch.nn.LSTM(3, 4, 2, dropout=1.0, dtype=TDT)
    layer, params = jaxrnn.from_torch(module)
    assert layer.dropout == 1.0
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    module.train()
    t_out, _ = module(_t(x))
    out, _ = layer.apply(params, jnp.asarray(x), key=jax.random.key(0))
    _close(out, t_out)  # layer 2 reads zeros in both, so the outputs are deterministic
    module.eval()
    _close(layer.apply(params, jnp.asarray(x))[0], module(_t(x))[0])


# ---------------------------------------------------------------------- pickle


def test_pickle_layers_and_cells():
    """test_modules.py test_pickle: a pickled and unpickled layer or cell gives the same
    outputs (jaxrnn pickles a factory's arguments; closures are rebuilt)."""
    x = jax.random.normal(KEY, (4, 2, 3), F64)
    layer = nn.LSTM(3, 5, bidirectional=True, proj_size=2, dtype=F64)
    p = layer.init(KEY)
    for other in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert other == layer
        np.testing.assert_array_equal(other.apply(p, x)[0], layer.apply(p, x)[0])
    xs = x[:, 0]
    built = [
        jaxrnn.lstm(3, 4, proj_size=2, forget_bias=1.0, dtype=F64),
        jaxrnn.zoneout(jaxrnn.gru(3, 4, dtype=F64), 0.3),
        jaxrnn.stack(jaxrnn.bidirectional(jaxrnn.rnn(3, 4, dtype=F64)), dropout=0.5),
    ]
    for obj in built:
        p = obj.init(KEY)
        other = pickle.loads(pickle.dumps(obj))
        assert other.config.kind == obj.config.kind
        run = jaxrnn.scan if isinstance(obj, jaxrnn.Cell) else (lambda o, p, x: o.apply(p, x))
        np.testing.assert_array_equal(run(other, p, xs)[1], run(obj, p, xs)[1])


def test_a_replaced_cell_is_not_pickled_by_its_stale_recipe():
    cell = jaxrnn.gru(3, 4, dtype=F64)
    changed = cell._replace(step=lambda p, c, x: (c, c))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(changed)  # a lambda: pickling fails loudly instead of rebuilding `cell`
