r"""Small sequence models: a recurrent :class:`~jaxrnn.Layer` plus a linear readout.

For one example ``xs (T, I)`` with valid prefix ``L`` (``length``; ``T`` when omitted)
the layer gives ``ys (T, F)`` and the head :math:`z = W u + b` (``W (O, F')``, PyTorch
``nn.Linear`` layout) reads one of

- ``"all"`` (many-to-many): :math:`u_t = y_t` for every ``t``; logits ``(T, O)``;
- ``"last"`` (many-to-one): :math:`u = y_{L-1}`, the output at the last valid step, as
  in the seed's ``out[:, -1, :]`` (for a bidirectional layer the backward half of
  :math:`y_{L-1}` has read only :math:`x_{L-1}`, exactly as in PyTorch);
- ``"mean"``: :math:`u = \frac1L \sum_{t<L} y_t`;
- ``"flatten"``: :math:`u = \mathrm{vec}(y_0, \dots, y_{T-1})` (``F' = T F``), the
  MNIST-1D paper's GRU readout (Greydanus & Kobak 2020), which needs a fixed ``T``.

Batching is ``jax.vmap`` (:func:`apply_batch`). Parameters are the pair
``(layer_params, HeadParams)``, so ``jaxrnn.grad`` methods see ``(cell_params,
head_params)`` for a single-cell model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Array, Cell, Layer, Params, PRNGKey
from jaxrnn.cells import (
    cho_gru,
    cifg_lstm,
    clockwork_rnn,
    gru,
    indrnn,
    layer_norm_lstm,
    lru,
    lstm,
    lstm_no_forget,
    mgu,
    min_gru,
    min_lstm,
    mlstm,
    peephole_lstm,
    rg_lru,
    rnn,
    slstm,
)
from jaxrnn.engine import loop
from jaxrnn.losses import accuracy, cross_entropy, length_mask, mse, pool_last, pool_mean
from jaxrnn.sequence import bidirectional as _bidirectional
from jaxrnn.sequence import recurrent, stack

__all__ = [
    "CELLS",
    "READOUTS",
    "HeadParams",
    "Model",
    "apply_batch",
    "generate",
    "linear",
    "make_cell",
    "make_layer",
    "objective",
    "sequence_model",
]

READOUTS = ("all", "last", "mean", "flatten")

CELLS: dict[str, Callable[..., Cell]] = {
    "rnn": lambda i, h, dtype: rnn(i, h, dtype=dtype),
    "rnn_relu": lambda i, h, dtype: rnn(i, h, nonlinearity="relu", dtype=dtype),
    "gru": lambda i, h, dtype: gru(i, h, dtype=dtype),
    "lstm": lambda i, h, dtype: lstm(i, h, dtype=dtype),
    "lstm_no_forget": lambda i, h, dtype: lstm_no_forget(i, h, dtype=dtype),
    "indrnn": lambda i, h, dtype: indrnn(i, h, dtype=dtype),
    "peephole_lstm": lambda i, h, dtype: peephole_lstm(i, h, dtype=dtype),
    "peephole_lstm_linear": lambda i, h, dtype: peephole_lstm(
        i, h, output_activation="identity", dtype=dtype
    ),
    "cifg_lstm": lambda i, h, dtype: cifg_lstm(i, h, dtype=dtype),
    "layer_norm_lstm": lambda i, h, dtype: layer_norm_lstm(i, h, dtype=dtype),
    "cho_gru": lambda i, h, dtype: cho_gru(i, h, dtype=dtype),
    "mgu": lambda i, h, dtype: mgu(i, h, dtype=dtype),
    "clockwork_rnn": lambda i, h, dtype: clockwork_rnn(i, h, dtype=dtype),
    "min_gru": lambda i, h, dtype: min_gru(i, h, dtype=dtype),
    "min_lstm": lambda i, h, dtype: min_lstm(i, h, dtype=dtype),
    "lru": lambda i, h, dtype: lru(i, h, dtype=dtype),
    "rg_lru": lambda i, h, dtype: rg_lru(i, h, dtype=dtype),
    "slstm": lambda i, h, dtype: slstm(i, h, dtype=dtype),
    "mlstm": lambda i, h, dtype: mlstm(i, h, dtype=dtype),
}


class HeadParams(NamedTuple):
    """Linear readout ``z = w u + b`` with ``w (O, F)`` and ``b (O,)`` (``nn.Linear`` layout)."""

    w: Array
    b: Array


def linear(in_features: int, out_features: int, *, dtype=jnp.float32):
    """``(init, apply)`` of a linear layer with PyTorch's ``U(-1/sqrt(F), 1/sqrt(F))`` init."""
    bound = 1.0 / math.sqrt(in_features)

    def init(key: PRNGKey) -> HeadParams:
        kw, kb = jax.random.split(key)
        w = jax.random.uniform(kw, (out_features, in_features), dtype, -bound, bound)
        b = jax.random.uniform(kb, (out_features,), dtype, -bound, bound)
        return HeadParams(w, b)

    def apply(params: HeadParams, u: Array) -> Array:
        return u @ params.w.T + params.b

    return init, apply


class Model(NamedTuple):
    """A sequence layer plus a linear head, for one example.

    Attributes:
      init: ``key -> (layer_params, HeadParams)``.
      apply: ``(params, xs (T, I), *, length=None, key=None) -> logits`` with logits
        ``(T, O)`` for readout ``"all"`` and ``(O,)`` otherwise; ``key`` enables the
        layer's dropout.
      layer: the recurrent :class:`~jaxrnn.Layer`.
      head: the head's ``apply(head_params, u)``.
      readout: one of :data:`READOUTS`.
      input_size, output_size: ``I`` and ``O``.
    """

    init: Callable[[PRNGKey], Params]
    apply: Callable[..., Array]
    layer: Layer
    head: Callable[[HeadParams, Array], Array]
    readout: str
    input_size: int | None
    output_size: int


def make_cell(name: str, input_size: int, hidden_size: int, *, dtype=jnp.float32) -> Cell:
    """A built-in cell by name: one of :data:`CELLS` (``jaxrnn train --cell NAME``)."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    return CELLS[name](input_size, hidden_size, dtype)


def make_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    dtype=jnp.float32,
) -> Layer:
    """``num_layers`` stacked (optionally bidirectional) layers of a built-in cell.

    Like ``torch.nn.{RNN,GRU,LSTM}(input_size, hidden_size, num_layers,
    bidirectional=..., dropout=...)``: layer ``k > 0`` reads the (concatenated)
    outputs of layer ``k - 1``; the output width is ``hidden_size`` times 2 when
    bidirectional.
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
    layers = []
    width = input_size
    for _ in range(num_layers):
        c = make_cell(cell, width, hidden_size, dtype=dtype)
        layers.append(_bidirectional(c) if bidirectional else recurrent(c))
        width = hidden_size * (2 if bidirectional else 1)
    if num_layers == 1:
        return layers[0]
    return stack(*layers, dropout=dropout)


def sequence_model(
    layer: Layer | Cell,
    output_size: int,
    *,
    readout: str = "last",
    seq_len: int | None = None,
    dtype=jnp.float32,
) -> Model:
    """Wrap ``layer`` (a :class:`~jaxrnn.Layer` or a cell) with a linear readout.

    Args:
      layer: the recurrent part; a :class:`~jaxrnn.Cell` is lifted with
        :func:`jaxrnn.recurrent`. Its ``output_size`` must be known.
      output_size: ``O``, the number of classes or regression targets.
      readout: ``"all"``, ``"last"``, ``"mean"`` or ``"flatten"`` (module docstring).
      seq_len: ``T``; required for ``"flatten"``.
      dtype: head parameter dtype.
    """
    if isinstance(layer, Cell):
        layer = recurrent(layer)
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if layer.output_size is None:
        raise ValueError("layer.output_size must be known to size the readout")
    features = layer.output_size
    if readout == "flatten":
        if seq_len is None or seq_len < 1:
            raise ValueError(f"seq_len must be a positive int for readout='flatten', got {seq_len}")
        features = features * seq_len
    head_init, head_apply = linear(features, output_size, dtype=dtype)

    def init(key):
        kl, kh = jax.random.split(key)
        return (layer.init(kl), head_init(kh))

    def apply(params, xs, *, length=None, key=None):
        if readout == "flatten" and xs.shape[0] != seq_len:
            raise ValueError(f"xs must have shape ({seq_len}, {layer.input_size}), got {xs.shape}")
        _, ys = layer.apply(params[0], xs, length=length, key=key)
        if readout == "all":
            u = ys
        elif readout == "last":
            u = pool_last(ys, length)
        elif readout == "mean":
            u = pool_mean(ys, length)
        else:
            u = ys.reshape(-1)
        return head_apply(params[1], u)

    return Model(init, apply, layer, head_apply, readout, layer.input_size, output_size)


def apply_batch(
    model: Model,
    params: Params,
    xs: Array,
    length: Array | None = None,
    key: PRNGKey | None = None,
) -> Array:
    """``model.apply`` over a batch ``xs (B, T, I)`` by ``jax.vmap``; ``length (B,)``."""
    if jnp.ndim(xs) != 3:
        raise ValueError(f"xs must have shape (B, T, {model.input_size}), got {jnp.shape(xs)}")
    keys = None if key is None else jax.random.split(key, xs.shape[0])
    if length is not None:  # the default int dtype, which jaxrnn.scan's step counter uses
        length = jnp.asarray(length, dtype=int)

    def one(x, ln, k):
        return model.apply(params, x, length=ln, key=k)

    axes = (0, None if length is None else 0, None if keys is None else 0)
    return jax.vmap(one, in_axes=axes)(xs, length, keys)


def generate(
    model: Model,
    params: Params,
    prompt: Array,
    num_steps: int,
    key: PRNGKey,
    *,
    embed: Callable[[Array], Array],
    temperature: float = 1.0,
) -> Array:
    r"""Sample ``num_steps`` tokens autoregressively from a many-to-many model.

    The layer reads ``prompt (P, I)``; then, repeatedly, a token is drawn from
    :math:`\mathrm{softmax}(z / \tau)` (``τ = temperature``; ``0`` means greedy
    argmax), fed back as ``embed(token) (I,)``, and the carry advanced one step.
    Returns the tokens ``(num_steps,)``. The model must be unidirectional with readout
    ``"all"``.
    """
    if model.readout != "all":
        raise ValueError(f"generate needs a model with readout='all', got {model.readout!r}")
    if prompt.ndim != 2 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must have shape (P, {model.input_size}), got {prompt.shape}")
    layer_params, head_params = params
    carry, ys = model.layer.apply(layer_params, prompt)
    logits = model.head(head_params, ys[-1])

    def step(state, k):  # one sampled token, fed back
        carry, logits = state
        if temperature == 0:
            tok = jnp.argmax(logits)
        else:
            tok = jax.random.categorical(k, logits / temperature)
        carry, y = model.layer.apply(layer_params, embed(tok)[None], carry)
        return (carry, model.head(head_params, y[0])), tok

    _, toks = loop(step, (carry, logits), jax.random.split(key, num_steps))
    return toks


KINDS = ("classify", "tagging", "regress")


def _reber_correct(logits: Array, legal: Array, mask: Array) -> Array:
    """Per string: at every valid step the top-k symbols are the k legal ones (H&S97)."""
    k = jnp.sum(legal, axis=-1, keepdims=True, dtype=jnp.int32)
    # rank of each symbol (0 = most probable); stable, so ties do not double count.
    ranks = jnp.argsort(jnp.argsort(-logits, axis=-1), axis=-1).astype(jnp.int32)
    predicted = ranks < k
    ok = jnp.all(predicted == legal, axis=-1) | ~mask
    return jnp.all(ok, axis=-1)


def objective(
    model: Model,
    kind: str,
    *,
    one_hot: int | None = None,
    tolerance: float = 0.04,
    dtype=jnp.float32,
) -> tuple[Callable, Callable]:
    """``(loss_fn, metric_fn)`` for a batch dict of a :class:`jaxrnn.tasks.Dataset`.

    ``loss_fn(params, batch, key) -> (loss, metrics)`` is what :func:`jaxrnn.train.fit`
    takes; ``metric_fn(params, batch) -> metrics`` evaluates without dropout. ``batch``
    holds ``x (B, T, I)`` (or token ids ``(B, T)`` with ``one_hot=V``), ``y`` and
    optionally ``length (B,)``. Kinds:

    - ``"classify"``: cross-entropy of ``logits (B, O)`` against ``y (B,)``; metrics
      ``loss``, ``accuracy``.
    - ``"tagging"``: per-step cross-entropy against ``y (B, T)``, masked by ``length``;
      metrics ``loss``, ``accuracy``, ``bpc`` and, when the batch has ``legal`` (Reber),
      ``strings_correct``.
    - ``"regress"``: MSE of ``(B, O)`` against ``y (B, O)``; metrics ``loss`` (= MSE),
      ``within_tol`` (fraction with every ``|error| < tolerance``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if (kind == "tagging") != (model.readout == "all"):
        raise ValueError(f"kind {kind!r} does not fit a model with readout {model.readout!r}")

    def outputs(params, batch, key):
        x = batch["x"]
        x = jax.nn.one_hot(x, one_hot, dtype=dtype) if one_hot else jnp.asarray(x, dtype)
        return apply_batch(model, params, x, batch.get("length"), key)

    def evaluate(params, batch, key):
        z = outputs(params, batch, key)
        y = batch["y"]
        if kind == "classify":
            loss = cross_entropy(z, y)
            return loss, {"accuracy": accuracy(z, y)}
        if kind == "regress":
            y = jnp.asarray(y, z.dtype)
            loss = mse(z, y)
            err = jnp.max(jnp.abs(z - y), axis=-1)
            return loss, {"within_tol": jnp.mean((err < tolerance).astype(z.dtype))}
        ln = batch.get("length")
        mask = None if ln is None else length_mask(ln, z.shape[1])
        loss = cross_entropy(z, y, mask)
        m = {"accuracy": accuracy(z, y, mask), "bpc": loss / jnp.log(2.0).astype(loss.dtype)}
        if "legal" in batch:
            full = jnp.ones(z.shape[:2], bool) if mask is None else mask
            m["strings_correct"] = jnp.mean(_reber_correct(z, batch["legal"], full).astype(z.dtype))
        return loss, m

    def loss_fn(params, batch, key):
        return evaluate(params, batch, key)

    @jax.jit
    def metric_fn(params, batch):
        loss, m = evaluate(params, batch, None)
        return {"loss": loss, **m}

    return loss_fn, metric_fn
