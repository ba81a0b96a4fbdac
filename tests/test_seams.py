"""The seams of issue 13: one registry of gradient methods, one call for every
``grad_fn``, a public forward-mode protocol, cells that describe themselves, one module
of shared checks."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn import cli, grad
from jaxrnn.grad import GRADIENT_METHODS, ForwardMethod, forward_grad_fn
from jaxrnn.train import gradient_methods

F64 = jnp.float64
KEY = jax.random.key(0)


def _loss(head, y, target):
    return 0.5 * jnp.sum((head @ y - target) ** 2)


def _problem(cell, T=6):
    rng = np.random.default_rng(0)
    params = (cell.init(KEY), jnp.asarray(rng.normal(size=(2, cell.output_size))))
    xs = jnp.asarray(rng.normal(size=(T, cell.input_size)))
    return params, xs, jnp.asarray(rng.normal(size=(T, 2)))


def test_one_registry_for_train_online_and_the_cli():
    assert gradient_methods() == {n: m.grad_fn for n, m in GRADIENT_METHODS.items()}
    assert set(grad.METHODS) == {n for n, m in GRADIENT_METHODS.items() if m.online}
    assert "bptt" not in grad.METHODS  # BPTT cannot run online
    parser = cli.build_parser()
    # no list of its own: without --methods, compare runs every registered method
    assert parser.parse_args(["compare"]).methods is None
    with pytest.raises(ValueError, match=r"method must be one of \['bptt'"):
        grad.gradient_method("magic")
    with pytest.raises(ValueError, match="method must be one of"):
        grad.online(jaxrnn.rnn(1, 2), _loss, optax.sgd(0.1), method="bptt")


@pytest.fixture(scope="module")
def rnn_problem():
    cell = jaxrnn.rnn(3, 4, dtype=F64)
    params, xs, targets = _problem(cell)
    mask = jnp.array([1, 1, 1, 0, 1, 1], bool)
    ref = grad.sequence_loss(cell, _loss, params, xs, targets, mask=mask)
    return cell, params, xs, targets, mask, ref


@pytest.mark.parametrize("name", sorted(GRADIENT_METHODS))
def test_every_grad_fn_has_the_common_call(name, rnn_problem):
    """``grad_fn(params, xs, targets, carry0=None, *, mask=None, key=None)`` for every
    method (deterministic ones take ``key=None``), with the exact masked loss."""
    cell, params, xs, targets, mask, ref = rnn_problem
    entry = GRADIENT_METHODS[name]
    if entry.element_wise:  # a stack of two element-wise cells instead of the Elman cell
        cell = jaxrnn.stack_cells(jaxrnn.indrnn(3, 4, dtype=F64), jaxrnn.indrnn(4, 4, dtype=F64))
        params, xs, targets = _problem(cell)
        ref = grad.sequence_loss(cell, _loss, params, xs, targets, mask=mask)
    fn = entry.grad_fn(cell, _loss, **({"k": 2} if "k" in entry.options else {}))
    sig = inspect.signature(fn)
    assert list(sig.parameters) == ["params", "xs", "targets", "carry0", "mask", "key"]
    assert sig.parameters["mask"].default is None and sig.parameters["key"].default is None
    key = jax.random.key(1) if entry.stochastic else None
    loss, (g_cell, _) = fn(params, xs, targets, mask=mask, key=key)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    assert jax.tree_util.tree_structure(g_cell) == jax.tree_util.tree_structure(params[0])
    if entry.stochastic:
        with pytest.raises(ValueError, match="key"):
            fn(params, xs, targets)


def test_a_user_forward_method_through_the_public_protocol():
    """Exact RTRL written against the public ForwardMethod protocol (named context,
    array trace) equals BPTT; a method with neither history nor current is refused."""

    def prepare(cell, fc, theta, c, x):
        return fc

    def init(fc, theta, c, M0, key):
        return jnp.zeros((fc.S, fc.P), theta.dtype) if M0 is None else M0

    def update(fc, theta, c, x, M, key):
        D = jax.jacfwd(lambda cc: fc.f(theta, cc, x)[0])(c)
        I = jax.jacrev(lambda th: fc.f(th, c, x)[0])(theta)
        return D @ M + I

    def history(fc, M, g_c, g_y):
        return g_c @ M

    cell = jaxrnn.gru(3, 4, dtype=F64)
    params, xs, targets = _problem(cell)
    mine = ForwardMethod(prepare=prepare, init=init, update=update, history=history)
    loss, g = forward_grad_fn(cell, _loss, mine)(params, xs, targets)
    ref_loss, ref = grad.bptt(cell, _loss)(params, xs, targets)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    for u, v in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
    broken = ForwardMethod(prepare=prepare, init=init, update=update)
    with pytest.raises(ValueError, match="neither history nor a current"):
        forward_grad_fn(cell, _loss, broken)(params, xs, targets)


def test_named_traces_and_contexts():
    cell = jaxrnn.rnn(2, 3, dtype=F64)
    params = _problem(cell)[0]
    learner = grad.online(cell, _loss, optax.sgd(0.01), method="uoro")
    state = learner.init(params, jax.random.key(2))
    assert isinstance(state.trace, grad.UOROTrace)
    assert state.trace.s.shape == (3,) and state.trace.theta_tilde.shape == (3 * 2 + 9 + 6,)


def test_cells_describe_themselves():
    cell = jaxrnn.rnn(3, 4, nonlinearity="relu", bias=False)
    assert cell.config.kind == "rnn"
    assert cell.config.options["nonlinearity"] == "relu"
    assert cell.config.options["bias"] is False
    assert dict(cell.config.build().config.options) == dict(cell.config.options)
    layer = jaxrnn.bidirectional(cell, merge="sum")
    assert layer.config.kind == "bidirectional" and layer.config.options["forward"] is cell
    assert jaxrnn.Cell(cell.init, cell.initial_carry, cell.step).config is None


def _zeros(cell):
    return jax.tree_util.tree_map(
        lambda a: np.zeros(a.shape, a.dtype), jax.eval_shape(cell.init, KEY)
    )


def test_to_torch_reads_the_description_and_refuses_other_cells():
    torch = pytest.importorskip("torch")
    for nl in ("tanh", "relu"):
        cell = jaxrnn.rnn(3, 4, nonlinearity=nl, dtype=F64)
        module = jaxrnn.to_torch(cell, _zeros(cell))
        assert isinstance(module, torch.nn.RNNCell) and module.nonlinearity == nl
    user = jaxrnn.Cell(cell.init, cell.initial_carry, cell.step, 3, 4)
    with pytest.raises(ValueError, match="a user-defined cell"):
        jaxrnn.to_torch(user, _zeros(cell))
    mgu = jaxrnn.mgu(3, 4)
    with pytest.raises(ValueError, match="RNNParams, GRUParams or LSTMParams"):
        jaxrnn.to_torch(mgu, _zeros(mgu))
    proj = jaxrnn.lstm(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="LSTMCell has no projection"):
        jaxrnn.to_torch(proj, _zeros(proj))


def test_one_copy_of_the_shared_checks():
    from jaxrnn import checks
    from jaxrnn.cells import _common
    from jaxrnn.grad import _common as grad_common

    assert _common.check_positive_int is checks.check_positive_int
    assert grad_common.check_positive_int is checks.check_positive_int
    for bad in (0, -1, 1.5, True, "3", None):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            checks.check_positive_int("n", bad)
    assert checks.check_positive_int("n", np.int64(3)) == 3
