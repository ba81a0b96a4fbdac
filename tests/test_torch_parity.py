"""Parity of :mod:`jaxrnn.nn` with ``torch.nn.RNN/GRU/LSTM`` after :func:`jaxrnn.from_torch`.

The reference is PyTorch itself (CPU, float64): outputs, ``h_n``, ``c_n`` and the
gradients of a random linear functional of them (a vector-Jacobian product) with
respect to the input, every parameter and ``h_0``/``c_0`` when given.

Axes: cell (``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm``, ``lstm_proj``) x num_layers
(1, 2, 3) x bidirectional x bias x layout (``(T, B, I)``, batch first, unbatched) x
h_0/c_0 (given or default) x lengths (none, or two unsorted ``lengths`` vectors: one with
``max == T`` and one with ``max < T``, evaluated by the same compiled function). The full
product is 720 compilations of a scan's gradient (1-4 s each on the 2-core CPU), far
outside the test budget, so the cases form a covering array: the full product of
cell x num_layers x bidirectional (30 rows), with bias, layout, h_0 and lengths chosen
so that every pair of values of every two axes occurs in some row
(:func:`test_covering_array_covers_all_pairs` checks it). The other 690 rows of the full
product run outside CI as a slow test (``pytest -m slow``).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jaxrnn  # noqa: E402
from jaxrnn.interop import from_torch, load_state_dict, state_dict, to_torch  # noqa: E402

I, H, P, T, B = 3, 4, 2, 5, 3
LENGTHS_BATCHED = (np.array([2, 5, 3]), np.array([3, 1, 4]))  # max == T, max < T; unsorted
LENGTHS_UNBATCHED = (np.array(T), np.array(2))

KINDS = ("rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj")
AXES = {
    "kind": KINDS,
    "num_layers": (1, 2, 3),
    "bidirectional": (False, True),
    "bias": (True, False),
    "layout": ("TBI", "BTI", "TI"),
    "h0": (False, True),
    "lengths": (False, True),
}
NAMES = tuple(AXES)


def _pairs(row):
    return {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(NAMES, 2)}


def _triples(row):
    return {tuple((a, row[a]) for a in t) for t in itertools.combinations(NAMES, 3)}


def _covering_array() -> list[dict]:
    """Full product of the first three axes; the others greedily fill every pair."""
    all_pairs = set()
    for a, b in itertools.combinations(NAMES, 2):
        all_pairs |= {((a, u), (b, v)) for u in AXES[a] for v in AXES[b]}
    free = NAMES[3:]
    options = list(itertools.product(*(AXES[n] for n in free)))
    rows, covered, covered3 = [], set(), set()
    for head in itertools.product(*(AXES[n] for n in NAMES[:3])):
        # Most new pairs first, then most new triples (spreads the remaining rows).
        best = max(
            (dict(zip(NAMES, head + opt)) for opt in options),
            key=lambda r: (len(_pairs(r) - covered), len(_triples(r) - covered3)),
        )
        rows.append(best)
        covered |= _pairs(best)
        covered3 |= _triples(best)
    while covered != all_pairs:  # not reached with the axes above, kept for safety
        (a, u), (b, v) = min(all_pairs - covered)
        row = {**rows[0], a: u, b: v}
        rows.append(row)
        covered |= _pairs(row)
    return rows


CASES = _covering_array()


def _case_id(c: dict) -> str:
    return (
        f"{c['kind']}-L{c['num_layers']}-{'bi' if c['bidirectional'] else 'uni'}-"
        f"{'bias' if c['bias'] else 'nobias'}-{c['layout']}-"
        f"{'h0' if c['h0'] else 'noh0'}-{'len' if c['lengths'] else 'nolen'}"
    )


# ----------------------------------------------------------------------- references


def _torch_module(kind, num_layers, bidirectional, bias, batch_first, dtype, seed=0):
    torch.manual_seed(seed)
    kw = dict(
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dtype=dtype,
    )
    if kind.startswith("rnn"):
        return torch.nn.RNN(I, H, nonlinearity=kind[4:], **kw)
    if kind == "gru":
        return torch.nn.GRU(I, H, **kw)
    return torch.nn.LSTM(I, H, proj_size=P if kind == "lstm_proj" else 0, **kw)


def _map_state(f, hx):
    if hx is None:
        return None
    return tuple(f(a) for a in hx) if isinstance(hx, tuple) else f(hx)


def _torch_run(module, x, hx, lengths, cot):
    """Outputs and the VJP with ``cot`` of ``module`` on numpy inputs, via autograd.

    With ``lengths``: ``pack_padded_sequence(enforce_sorted=False)`` -> module ->
    ``pad_packed_sequence(total_length=T)``; unbatched input goes through a batch of 1.
    """
    pack = torch.nn.utils.rnn
    xt = torch.tensor(x, requires_grad=True)
    hxt = None if hx is None else [torch.tensor(a, requires_grad=True) for a in hx]
    lstm = isinstance(module, torch.nn.LSTM)
    hx_arg = None if hxt is None else (tuple(hxt) if lstm else hxt[0])
    unbatched = x.ndim == 2
    if lengths is None:
        out, hn = module(xt, hx_arg)
    else:
        xb, hb, bf = xt, hx_arg, module.batch_first
        if unbatched:  # packing needs a batch axis
            xb, bf = xt.unsqueeze(1), False
            hb = _map_state(lambda a: a.unsqueeze(1), hx_arg)
            lengths = lengths.reshape(1)
            assert not module.batch_first
        packed = pack.pack_padded_sequence(
            xb, torch.as_tensor(lengths), batch_first=bf, enforce_sorted=False
        )
        out, hn = module(packed, hb)
        out, _ = pack.pad_packed_sequence(out, batch_first=bf, total_length=T)
        if unbatched:
            out = out.squeeze(1)
            hn = _map_state(lambda a: a.squeeze(1), hn)
    outs = [out, *(hn if lstm else (hn,))]
    params = dict(module.named_parameters())
    inputs = [xt, *params.values(), *(hxt or [])]
    grads = torch.autograd.grad(
        outs,
        inputs,
        [torch.tensor(c) for c in cot],
        allow_unused=True,
        materialize_grads=True,
    )
    gx, gp, gh = grads[0], grads[1 : 1 + len(params)], grads[1 + len(params) :]
    np_ = lambda t: t.detach().numpy()  # noqa: E731
    return (
        [np_(o) for o in outs],
        np_(gx),
        {k: np_(g) for k, g in zip(params, gp)},
        [np_(g) for g in gh],
    )


@functools.partial(jax.jit, static_argnums=0)
def _jax_run(layer, params, x, hx, lengths, cot):
    """``(output, h_n[, c_n])`` and the VJP with ``cot`` wrt ``(params, x, hx)``.

    Compiled once per (layer config, shapes, hx/lengths given or not); the two lengths
    vectors of a case reuse the compilation.
    """

    def f(params, x, hx):
        out, hn = layer.apply(params, x, hx, lengths=lengths)
        return [out, *hn] if isinstance(hn, tuple) else [out, hn]

    outs, vjp = jax.vjp(f, params, x, hx)
    return outs, vjp(list(cot))


def _compare(case, dtype, rtol, atol, seed=0):
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    layout = case["layout"]
    module = _torch_module(
        case["kind"],
        case["num_layers"],
        case["bidirectional"],
        case["bias"],
        layout == "BTI",
        tdt,
        seed,
    )
    layer, params = from_torch(module)
    assert layer.dtype == dtype
    rng = np.random.default_rng(seed)
    shape = {"TBI": (T, B, I), "BTI": (B, T, I), "TI": (T, I)}[layout]
    x = rng.standard_normal(shape).astype(dtype)
    batch = () if layout == "TI" else (B,)
    n = layer.num_layers * layer.num_directions
    hx = None
    if case["h0"]:
        hx = [0.5 * rng.standard_normal((n, *batch, layer.output_size)).astype(dtype)]
        if isinstance(layer, jaxrnn.nn.LSTM):
            hx.append(0.5 * rng.standard_normal((n, *batch, H)).astype(dtype))
    D_out = layer.num_directions * layer.output_size
    out_shape = (*shape[:-1], D_out)
    state_shapes = [(n, *batch, layer.output_size)]
    if isinstance(layer, jaxrnn.nn.LSTM):
        state_shapes.append((n, *batch, H))
    cot = [rng.standard_normal(s).astype(dtype) for s in (out_shape, *state_shapes)]
    variants = [None]
    if case["lengths"]:
        variants = LENGTHS_UNBATCHED if layout == "TI" else LENGTHS_BATCHED
    for lengths in variants:
        t_outs, t_gx, t_gp, t_gh = _torch_run(module, x, hx, lengths, cot)
        hx_j = None
        if hx is not None:
            hx_j = tuple(hx) if isinstance(layer, jaxrnn.nn.LSTM) else hx[0]
        j_outs, (j_gp, j_gx, j_gh) = _jax_run(
            layer, params, x, hx_j, None if lengths is None else jnp.asarray(lengths), cot
        )
        close = functools.partial(np.testing.assert_allclose, rtol=rtol, atol=atol)
        assert len(j_outs) == len(t_outs)
        for j, t, name in zip(j_outs, t_outs, ["output", "h_n", "c_n"]):
            assert j.shape == t.shape, name
            assert j.dtype == dtype, name
            close(j, t, err_msg=f"{name}, lengths={lengths}")
        if lengths is not None and layout != "TI":  # padded outputs are exactly zero
            t_idx = np.arange(T)
            pad = t_idx[None, :] >= np.asarray(lengths)[:, None]  # (B, T)
            out = np.asarray(j_outs[0])
            out = out if layout == "BTI" else out.swapaxes(0, 1)
            assert np.all(out[pad] == 0)
        close(j_gx, t_gx, err_msg=f"grad x, lengths={lengths}")
        t_gp_tree = load_state_dict(layer, t_gp)
        assert jax.tree_util.tree_structure(j_gp) == jax.tree_util.tree_structure(t_gp_tree)
        for (path, j), t in zip(
            jax.tree_util.tree_leaves_with_path(j_gp), jax.tree_util.tree_leaves(t_gp_tree)
        ):
            close(j, t, err_msg=f"grad params{jax.tree_util.keystr(path)}")
        assert len(jax.tree_util.tree_leaves(j_gp)) == len(t_gp)
        if hx is not None:
            j_gh = list(j_gh) if isinstance(layer, jaxrnn.nn.LSTM) else [j_gh]
            for j, t, name in zip(j_gh, t_gh, ["h_0", "c_0"]):
                close(j, t, err_msg=f"grad {name}, lengths={lengths}")
    return layer, params, module


# ---------------------------------------------------------------------------- tests


def test_covering_array_covers_all_pairs():
    needed = set()
    for a, b in itertools.combinations(NAMES, 2):
        needed |= {((a, u), (b, v)) for u in AXES[a] for v in AXES[b]}
    got = set().union(*(_pairs(c) for c in CASES))
    assert got == needed
    heads = {tuple(c[n] for n in NAMES[:3]) for c in CASES}
    assert heads == set(itertools.product(*(AXES[n] for n in NAMES[:3])))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_parity_float64(case):
    _compare(case, np.float64, rtol=1e-10, atol=1e-10)


_FULL = [dict(zip(NAMES, v)) for v in itertools.product(*AXES.values())]
REST_OF_PRODUCT = [c for c in _FULL if c not in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", REST_OF_PRODUCT, ids=_case_id)
def test_parity_float64_rest_of_full_product(case):
    """The rows of the full product that the covering array leaves out (about 15
    minutes on 2 cores, outside CI): ``pytest -m slow tests/test_torch_parity.py``."""
    _compare(case, np.float64, rtol=1e-10, atol=1e-10)


FLOAT32_CASES = [
    dict(
        kind="lstm_proj",
        num_layers=2,
        bidirectional=True,
        bias=True,
        layout="BTI",
        h0=True,
        lengths=True,
    ),
    dict(
        kind="gru",
        num_layers=2,
        bidirectional=False,
        bias=True,
        layout="TBI",
        h0=False,
        lengths=True,
    ),
]


@pytest.mark.parametrize("case", FLOAT32_CASES, ids=_case_id)
def test_parity_float32(case):
    _compare(case, np.float32, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- round trips


ROUND_TRIP_CASES = [
    c for c in CASES if not (c["h0"] or c["lengths"]) and c["kind"] in ("gru", "lstm_proj")
]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=_case_id)
def test_to_torch_round_trip(case):
    """jaxrnn params -> torch module -> the same outputs, and the same params back."""
    ref = _torch_module(
        case["kind"],
        case["num_layers"],
        case["bidirectional"],
        case["bias"],
        case["layout"] == "BTI",
        torch.float64,
    )
    layer, _ = from_torch(ref)
    params = layer.init(jax.random.key(3))  # jaxrnn's own init, not torch's
    module = to_torch(layer, params)
    assert type(module) is type(ref)
    assert str(module) == str(ref)
    assert next(module.parameters()).dtype == torch.float64
    layer2, params2 = from_torch(module)
    assert layer2 == layer
    jax.tree_util.tree_map(np.testing.assert_array_equal, params2, params)
    rng = np.random.default_rng(1)
    shape = {"TBI": (T, B, I), "BTI": (B, T, I), "TI": (T, I)}[case["layout"]]
    x = rng.standard_normal(shape)
    with torch.no_grad():
        out, hn = module(torch.from_numpy(x))
    t_outs = [out.numpy(), *(t.numpy() for t in (hn if isinstance(hn, tuple) else (hn,)))]
    # Same signature as in test_parity_float64, so the compiled function is reused.
    cot = [np.zeros_like(t) for t in t_outs]
    j_outs, _ = _jax_run(layer, params, x, None, None, cot)
    for j, t in zip(j_outs, t_outs):
        np.testing.assert_allclose(j, t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip(kind):
    module = _torch_module(kind, 2, True, True, False, torch.float64, seed=4)
    layer, params = from_torch(module)
    sd = state_dict(layer, params)
    torch_sd = module.state_dict()
    assert list(sd) == list(torch_sd)  # same names, same order
    for k in sd:
        assert sd[k].dtype == np.float64
        np.testing.assert_array_equal(sd[k], torch_sd[k].numpy())
    back = load_state_dict(layer, sd)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)
    # The dict loads into a fresh torch module (strict) and reproduces the weights.
    fresh = _torch_module(kind, 2, True, True, False, torch.float64, seed=5)
    fresh.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), torch_sd[k].numpy())


def test_state_dict_names_without_bias_and_with_projection():
    module = torch.nn.LSTM(I, H, num_layers=2, bias=False, proj_size=P, bidirectional=True)
    layer, params = from_torch(module)
    assert layer.dtype == np.float32
    sd = state_dict(layer, params)
    assert list(sd) == list(module.state_dict())
    assert "weight_hr_l1_reverse" in sd and not any(k.startswith("bias") for k in sd)
    assert params[1][1].b_ih is None and params[1][1].w_hr.shape == (P, H)


def test_load_state_dict_rejects_bad_keys_and_shapes():
    layer = jaxrnn.nn.GRU(I, H, num_layers=2)
    sd = state_dict(layer, layer.init(jax.random.key(0)))
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l1'\]"):
        load_state_dict(layer, {k: v for k, v in sd.items() if k != "bias_hh_l1"})
    with pytest.raises(ValueError, match=r"unexpected \['weight_hr_l0'\]"):
        load_state_dict(layer, {**sd, "weight_hr_l0": np.zeros((P, H))})
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l1'\] must have shape \(12, 4\)"):
        load_state_dict(layer, {**sd, "weight_ih_l1": np.zeros((12, 3))})
    with pytest.raises(ValueError, match=r"module must be a torch\.nn\.RNN"):
        from_torch(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_from_torch_and_back(kind, bias):
    """``torch.nn.*Cell`` -> jaxrnn cell with torch's tensors in the same layout, and back.

    (That the converted cell steps like torch is the cell battery's torch reference,
    ``test_cells.py::test_steps_match_torch``, which runs through ``to_torch``.)"""
    torch.manual_seed(7)
    dt = torch.float64
    if kind.startswith("rnn"):
        module = torch.nn.RNNCell(I, H, bias=bias, nonlinearity=kind[4:], dtype=dt)
    elif kind == "gru":
        module = torch.nn.GRUCell(I, H, bias=bias, dtype=dt)
    else:
        module = torch.nn.LSTMCell(I, H, bias=bias, dtype=dt)
    cell, params = from_torch(module)
    assert isinstance(cell, jaxrnn.Cell)
    expected = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
    for field, name in expected.items():
        value = getattr(params, field)
        if bias or field.startswith("w"):
            np.testing.assert_array_equal(value, getattr(module, name).detach().numpy())
        else:
            assert value is None
    back = to_torch(cell, params)
    assert str(back) == str(module)
    for k, v in back.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), module.state_dict()[k].numpy())


# ---------------------------------------------------------------------------- dropout


def test_dropout_without_key_equals_torch_eval_mode():
    torch.manual_seed(11)
    module = torch.nn.LSTM(I, H, num_layers=2, dropout=0.5, proj_size=P).double()
    module.eval()
    layer, params = from_torch(module)
    assert layer.dropout == 0.5
    x = np.random.default_rng(0).standard_normal((T, B, I))
    with torch.no_grad():
        out, (h, c) = module(torch.from_numpy(x))
    j_out, (j_h, j_c) = jax.jit(layer.apply)(params, x)
    for j, t in [(j_out, out), (j_h, h), (j_c, c)]:
        np.testing.assert_allclose(j, t.numpy(), rtol=1e-10, atol=1e-10)
    # With a key (training mode) the numbers change; the same key gives the same numbers.
    run = jax.jit(lambda p, x, k: layer.apply(p, x, key=k))
    d1, _ = run(params, x, jax.random.key(0))
    d2, _ = run(params, x, jax.random.key(0))
    d3, _ = run(params, x, jax.random.key(1))
    assert not np.allclose(d1, j_out)
    np.testing.assert_array_equal(d1, d2)
    assert not np.allclose(d1, d3)


def test_dropout_is_inverted_between_layers_only():
    """Two relu layers whose second one is the identity on non-negative inputs.

    Then the output is exactly the dropped-out output ``h`` of layer 0: each element is
    0 with probability ``p`` and ``h / (1 - p)`` otherwise (one application: after the
    last layer there is none). Over ``N`` independent masks (one per batch element) the
    fraction of zeros is ``p`` and the mean is ``h``, within 5 standard errors.
    """
    p, N, Hd = 0.3, 4000, 4
    layer = jaxrnn.nn.RNN(I, Hd, num_layers=2, nonlinearity="relu", dropout=p, dtype=jnp.float64)
    params = layer.init(jax.random.key(0))
    l0 = params[0][0]
    l0 = l0._replace(w_ih=jnp.abs(l0.w_ih), b_ih=jnp.abs(l0.b_ih))  # h > 0 for x > 0
    l1 = params[1][0]
    l1 = l1._replace(
        w_ih=jnp.eye(Hd), w_hh=jnp.zeros((Hd, Hd)), b_ih=jnp.zeros(Hd), b_hh=jnp.zeros(Hd)
    )
    params = ((l0,), (l1,))
    x1 = np.abs(np.random.default_rng(0).standard_normal((T, I))) + 0.1
    h = np.zeros((T, Hd))  # the output of layer 0 (NumPy loop of h = relu(W x + b + U h + c))
    prev = np.zeros(Hd)
    for t in range(T):
        prev = np.maximum(l0.w_ih @ x1[t] + l0.b_ih + l0.w_hh @ prev + l0.b_hh, 0)
        h[t] = prev
    assert np.all(h > 0)
    xs = jnp.broadcast_to(jnp.asarray(x1)[:, None], (T, N, I))
    out, _ = jax.jit(layer.apply)(params, xs, key=jax.random.key(5))
    out = np.asarray(out)  # (T, N, Hd)
    kept = out != 0
    np.testing.assert_allclose(out[kept], np.broadcast_to(h[:, None] / (1 - p), out.shape)[kept])
    # Fraction dropped: binomial with n = out.size.
    frac = 1 - kept.mean()
    assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / out.size)
    # Mean preserved per element: std of the mean is h * sqrt(p / ((1 - p) N)).
    se = h * np.sqrt(p / ((1 - p) * N))
    z = (out.mean(axis=1) - h) / se
    assert np.max(np.abs(z)) < 5


def test_cell_state_dict_round_trip_keeps_the_projection():
    cell = jaxrnn.lstm(I, H, proj_size=P, bias=False, dtype=jnp.float64)
    params = cell.init(jax.random.key(0))
    sd = state_dict(cell, params)
    assert list(sd) == ["weight_ih", "weight_hh", "weight_hr"]
    back = load_state_dict(cell, sd)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)
    with pytest.raises(ValueError, match=r"torch\.nn\.LSTMCell has no projection"):
        to_torch(cell, params)
    with pytest.raises(ValueError, match="params must be RNNParams, GRUParams or LSTMParams"):
        state_dict(cell, {"w": params.w_ih})
