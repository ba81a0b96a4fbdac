"""Flax interop: NNX/linen wrappers compute and train exactly like the functional path;
parameters converted from Flax's cells give Flax's outputs (float64, 1e-10), and back
where the conversion is exact; the other conversions are refused."""

from __future__ import annotations

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrnn
from jaxrnn.interop import flax as jf
from jaxrnn.train import make_train_step

F64 = jnp.float64
I, H, T, B = 3, 4, 5, 2
TOL = dict(rtol=1e-10, atol=1e-10)
normal = jax.nn.initializers.normal(0.5)


def _close(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


# ------------------------------------------------------------------------ wrappers


class Model(nnx.Module):
    """An NNX model holding a jaxrnn LSTM and an nnx.Linear head."""

    def __init__(self, rngs):
        self.rnn = jf.NNXLayer(jaxrnn.nn.LSTM(I, H, batch_first=True, dtype=F64), rngs=rngs)
        self.head = nnx.Linear(H, 2, param_dtype=F64, dtype=F64, rngs=rngs)

    def __call__(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_nnx_model_trains_with_nnx_optimizer_like_the_functional_path():
    model = Model(nnx.Rngs(0))
    lstm = model.rnn.layer
    params = (model.rnn.value, (model.head.kernel[...], model.head.bias[...]))
    keys = jax.random.split(jax.random.key(1), 6)
    batches = [
        {"x": jax.random.normal(k, (B, T, I), F64), "y": jax.random.normal(k, (B, 2), F64)}
        for k in keys
    ]
    tx = optax.adam(0.05)

    def nnx_loss(m, batch):
        return jnp.mean((m(batch["x"]) - batch["y"]) ** 2)

    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(m, opt, batch):
        loss, grads = nnx.value_and_grad(nnx_loss)(m, batch)
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 count (as in train.py)
            opt.update(m, grads)
        return loss

    def loss_fn(p, batch, key):
        out, _ = lstm.apply(p[0], batch["x"])
        w, b = p[1]
        return jnp.mean((out[:, -1] @ w + b - batch["y"]) ** 2), {}

    train_step = make_train_step(loss_fn, tx)
    opt_state = tx.init(params)
    for batch in batches:
        loss = nnx_step(model, optimizer, batch)
        params, opt_state, metrics = train_step(params, opt_state, batch, jax.random.key(0))
        np.testing.assert_allclose(loss, metrics["loss"], **TOL)
    _close(model.rnn.value, params[0])
    _close((model.head.kernel[...], model.head.bias[...]), params[1])
    # Training moved the LSTM's weights (the comparison above is not of untouched params).
    assert not np.allclose(model.rnn.value[0][0].w_hh, lstm.init(jax.random.key(99))[0][0].w_hh)


def test_nnx_cell_any_batch_shape_and_broadcast_carry():
    cell = jaxrnn.lstm(I, H, dtype=F64)
    m = jf.NNXCell(cell, rngs=nnx.Rngs(0))
    assert set(nnx.state(m, nnx.Param)["params"]) == {"w_ih", "w_hh", "b_ih", "b_hh"}
    x = jax.random.normal(jax.random.key(2), (2, 3, I), F64)
    carry = m.initialize_carry(x.shape)
    assert carry.h.shape == (2, 3, H) and carry.c.shape == (2, 3, H)
    carry = jax.tree_util.tree_map(lambda a: a + 0.1, carry)
    new, y = m(carry, x)
    p = m.value
    for i in range(2):
        for j in range(3):
            c_ij = jax.tree_util.tree_map(lambda a, i=i, j=j: a[i, j], carry)
            c_ref, y_ref = cell.step(p, c_ij, x[i, j])
            _close((new.h[i, j], new.c[i, j], y[i, j]), (c_ref.h, c_ref.c, y_ref))
    with pytest.raises(ValueError, match="x must have shape"):
        m(carry, jnp.ones((2, 3, I + 1), F64))


def test_nnx_layer_of_a_cell_and_linen_cell_equal_the_functional_path():
    cell = jaxrnn.gru(I, H, dtype=F64)
    xs = jax.random.normal(jax.random.key(3), (2, 3, T, I), F64)
    m = jf.NNXLayer(cell, rngs=nnx.Rngs(1))
    carry, ys = m(xs)
    for i in range(2):
        for j in range(3):
            c_ref, ys_ref = jaxrnn.scan(cell, m.value, xs[i, j])
            _close((carry[i, j], ys[i, j]), (c_ref, ys_ref))
    assert m.initialize_carry(xs.shape).shape == (2, 3, H)

    lm = jf.LinenCell(cell)
    x = xs[:, :, 0]
    h0 = jnp.zeros((2, 3, H), F64)
    variables = lm.init(jax.random.key(4), h0, x)
    p = variables["params"]["cell"]
    assert isinstance(p, jaxrnn.GRUParams)
    h1, _ = lm.apply(variables, h0 + 0.2, x)
    for i in range(2):
        for j in range(3):
            _close(h1[i, j], cell.step(p, h0[i, j] + 0.2, x[i, j])[0])
    _close(lm.apply(variables, x.shape, method="initialize_carry"), h0)


# ----------------------------------------------------------------------- conversion


def _linen(cls, **kw):
    return cls(features=H, param_dtype=F64, dtype=F64, bias_init=normal, **kw)


def _nnx(cls, seed=0, **kw):
    return cls(I, H, param_dtype=F64, dtype=F64, bias_init=normal, rngs=nnx.Rngs(seed), **kw)


FLAX_CELLS = {
    "linen.LSTMCell": lambda: _linen(linen.LSTMCell),
    "linen.OptimizedLSTMCell": lambda: _linen(linen.OptimizedLSTMCell),
    "linen.GRUCell": lambda: _linen(linen.GRUCell),
    "linen.SimpleCell": lambda: _linen(linen.SimpleCell, residual=True),
    "nnx.LSTMCell": lambda: _nnx(nnx.LSTMCell),
    "nnx.OptimizedLSTMCell": lambda: _nnx(nnx.OptimizedLSTMCell),
    "nnx.GRUCell": lambda: _nnx(nnx.GRUCell),
    "nnx.SimpleCell": lambda: _nnx(nnx.SimpleCell, activation_fn=jax.nn.relu),
}


def _flax_run(module, variables, carry, xs):
    """A Python loop of the Flax cell's own ``__call__`` over time (batch first)."""
    ys = []
    for t in range(xs.shape[1]):
        if variables is None:
            carry, y = module(carry, xs[:, t])
        else:
            carry, y = module.apply(variables, carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def _setup(name):
    module = FLAX_CELLS[name]()
    xs = jax.random.normal(jax.random.key(5), (B, T, I), F64)
    k = jax.random.key(6)
    if name.startswith("linen"):
        carry0 = module.initialize_carry(k, (B, I))
        variables = module.init(jax.random.key(7), carry0, xs[:, 0])
    else:
        carry0 = module.initialize_carry((B, I), rngs=nnx.Rngs(0))
        variables = None
    # A nonzero, non-symmetric initial state so the carry order (c, h) matters.
    carry0 = jax.tree_util.tree_map(
        lambda a: jax.random.normal(k, a.shape, F64) * (1 + jnp.arange(a.shape[-1], dtype=F64)),
        carry0,
    )
    return module, variables, carry0, xs


@pytest.mark.parametrize("name", sorted(FLAX_CELLS))
def test_from_flax_gives_flax_outputs(name):
    module, variables, carry0, xs = _setup(name)
    carry_ref, ys_ref = _flax_run(module, variables, carry0, xs)
    cell, params = jf.from_flax(module, variables)
    carry, ys = jax.vmap(lambda x, c: jaxrnn.scan(cell, params, x, c))(
        xs, jf.carry_from_flax(carry0)
    )
    _close(ys, ys_ref)
    _close(jf.carry_to_flax(carry), carry_ref)


def _random_params(cell, seed):
    """Params with every entry drawn from N(0, 0.5^2): both biases nonzero."""
    p = cell.init(jax.random.key(seed))
    leaves, tree = jax.tree_util.tree_flatten(p)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return tree.unflatten([normal(k, a.shape, F64) for k, a in zip(keys, leaves)])


JAXRNN_CELLS = {
    "lstm": lambda: jaxrnn.lstm(I, H, dtype=F64),
    "gru": lambda: jaxrnn.gru(I, H, dtype=F64),
    "rnn": lambda: jaxrnn.rnn(I, H, nonlinearity="relu", dtype=F64),
}
TARGETS = {
    "lstm": ["linen.LSTMCell", "linen.OptimizedLSTMCell", "nnx.LSTMCell", "nnx.OptimizedLSTMCell"],
    "gru": ["linen.GRUCell", "nnx.GRUCell"],
    "rnn": ["nnx.SimpleCell"],
}


@pytest.mark.parametrize(
    "kind,target", [(k, t) for k, ts in TARGETS.items() for t in ts], ids=lambda v: str(v)
)
def test_to_flax_is_exact_where_claimed(kind, target):
    module, variables, carry0, xs = _setup(target)
    cell = JAXRNN_CELLS[kind]()
    params = _random_params(cell, 11)
    if target == "nnx.GRUCell":
        with pytest.raises(ValueError, match="b_hn"):
            jf.to_flax(params, module)
        # Exact once b_hn = 0 (the r and z blocks of b_hh fold into dense_i's bias).
        params = params._replace(b_hh=params.b_hh.at[2 * H :].set(0.0))
    out = jf.to_flax(params, module)
    if target.startswith("linen"):
        variables = out
    else:
        assert out is module
    carry_ref, ys_ref = _flax_run(module, variables, carry0, xs)
    carry, ys = jax.vmap(lambda x, c: jaxrnn.scan(cell, params, x, c))(
        xs, jf.carry_from_flax(carry0)
    )
    _close(ys, ys_ref)
    _close(jf.carry_to_flax(carry), carry_ref)


def test_refused_conversions_name_the_reason():
    lstmp = jaxrnn.lstm(I, H, proj_size=2, dtype=F64)
    with pytest.raises(ValueError, match="no projection"):
        jf.to_flax(lstmp.init(jax.random.key(0)), FLAX_CELLS["nnx.LSTMCell"]())
    hard = nnx.LSTMCell(I, H, gate_fn=jax.nn.hard_sigmoid, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"gate_fn must be jax\.nn\.sigmoid"):
        jf.from_flax(hard)
    with pytest.raises(ValueError, match="module must be a flax"):
        jf.from_flax(nnx.Linear(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="variables"):
        jf.from_flax(linen.LSTMCell(features=H))
    gru_params = jaxrnn.gru(I, H, dtype=F64).init(jax.random.key(0))
    with pytest.raises(ValueError, match="params must be LSTMParams"):
        jf.to_flax(gru_params, FLAX_CELLS["nnx.LSTMCell"]())
    with pytest.raises(ValueError, match="hidden_features=4"):
        jf.to_flax(gru_params, nnx.GRUCell(I, H + 1, rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match=r"jaxrnn\.Cell"):
        jf.NNXCell(jaxrnn.nn.LSTM(I, H), rngs=nnx.Rngs(0))
