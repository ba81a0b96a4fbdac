"""The seeds' applications, reproduced end to end: one function per task that builds the
offline data, the model and the optimiser, trains, and evaluates the way the
literature does. ``jaxrnn train --task NAME`` and the example scripts call these.

==================  ==========================================  ==============================
task                model                                       metric (held-out data)
==================  ==========================================  ==============================
``number_words``    encoder-decoder, conditioned decoder,       exact match (greedy, beam)
                    optional additive attention (seq2seq.py)
``digit_strips``    deep bidirectional LSTM + CTC (ctc.py)      label error rate (greedy,
                                                                prefix beam)
``digit_captions``  image encoding -> conditioned decoder       correct name (greedy, sampled)
``continual_reber`` LSTM with / without forget gate,            symbols before the first error;
                    never reset (continual.py)                  solved = whole test stream
==================  ==========================================  ==============================

Each ``run_*`` returns a dict: ``metrics`` (floats), ``history`` (evaluations during
training), ``params``, ``num_params``, ``wall_s`` (training and evaluation) and
``report`` (lines to print, with examples of the model's output).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cost import count_params

__all__ = [
    "APPLICATIONS",
    "run_captions",
    "run_continual_reber",
    "run_ctc",
    "run_seq2seq",
]


def _fit(
    loss_fn,
    params,
    data,
    *,
    steps,
    lr,
    batch_size,
    seed,
    eval_fn,
    eval_every,
    progress,
    checkpoint_path,
    desc,
):
    from jaxrnn.train import fit, make_optimizer

    return fit(
        loss_fn,
        params,
        data,
        steps=steps,
        key=jax.random.key(seed + 1),
        optimizer=make_optimizer("adam", lr, decay_steps=steps),
        batch_size=batch_size,
        data_seed=seed,
        eval_fn=eval_fn,
        eval_every=eval_every,
        checkpoint_path=checkpoint_path,
        progress=progress,
        desc=desc,
    )


def _result(metrics, history, params, t0, report) -> dict[str, Any]:
    """What every runner returns; :func:`jaxrnn.runs.train_run` (``jaxrnn train``) and
    ``examples/applications.py`` read these keys."""
    return {
        "metrics": metrics,
        "history": history,
        "params": params,
        "num_params": count_params(params),
        "wall_s": time.perf_counter() - t0,
        "report": report,
    }


def _exact(out, y, y_length):
    """Rows whose first ``y_length`` tokens (the target and its end token) are right."""
    y_length = jnp.asarray(y_length)
    valid = jnp.arange(out.shape[-1], dtype=y_length.dtype) < y_length[:, None]
    return jnp.all((out == y) | ~valid, axis=-1)


# --------------------------------------------------------------------- seq2seq


def run_seq2seq(
    *,
    seed: int = 0,
    hidden: int = 64,
    steps: int = 1000,
    lr: float = 3e-3,
    batch_size: int = 64,
    attention: bool = True,
    beam: int = 4,
    cell: str = "lstm",
    max_value: int = 99_999,
    num_test: int = 2000,
    eval_every: int = 250,
    progress: bool = True,
    checkpoint_path=None,
) -> dict[str, Any]:
    """English number words -> digits (``jaxrnn.tasks.number_words``): a bidirectional
    encoder, a decoder started from the encoder's conditioned state, teacher forcing;
    exact match of greedy and beam-search decoding on ``num_test`` held-out numbers."""
    from jaxrnn.seq2seq import encoder_decoder
    from jaxrnn.tasks.number_words import number_words

    t0 = time.perf_counter()
    data = number_words(max_value=max_value, num_test=num_test, seed=seed)
    meta = data.meta
    model = encoder_decoder(
        len(meta["target_vocab"]),
        hidden,
        source_vocab=len(meta["source_vocab"]),
        cell=cell,
        attention=attention,
        bos=meta["bos"],
        eos=meta["eos"],
    )
    params = model.init(jax.random.key(seed))
    T = meta["target_len"]

    def loss_fn(p, b, key):
        per = jax.vmap(lambda s, n, t, m: model.loss(p, s, n, t, m))(
            b["x"], b["length"], b["y"], b["y_length"]
        )
        return jnp.mean(per), {}

    @jax.jit
    def greedy(p, b):
        return jax.vmap(lambda s, n: model.greedy(p, s, n, T))(b["x"], b["length"])

    @jax.jit
    def beamed(p, b):
        return jax.vmap(lambda s, n: model.beam_search(p, s, n, T, beam)[0][0])(b["x"], b["length"])

    test = {k: jnp.asarray(v) for k, v in data.test.items()}

    def eval_fn(p):
        ok = _exact(greedy(p, test), test["y"], test["y_length"])
        return {"test_exact_match": float(jnp.mean(ok))}

    res = _fit(
        loss_fn,
        params,
        data.train,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        eval_fn=eval_fn,
        eval_every=eval_every,
        progress=progress,
        checkpoint_path=checkpoint_path,
        desc="number_words",
    )
    g = greedy(res.params, test)
    b = beamed(res.params, test)
    metrics = {
        "test_exact_match_greedy": float(jnp.mean(_exact(g, test["y"], test["y_length"]))),
        f"test_exact_match_beam{beam}": float(jnp.mean(_exact(b, test["y"], test["y_length"]))),
    }
    words, digits = meta["source_vocab"], meta["target_vocab"]

    def show(i):
        src = " ".join(words[w] for w in data.test["x"][i][: data.test["length"][i]])
        out = "".join(digits[t] for t in np.asarray(g[i]).tolist() if t > 1)
        return f"  {src!r} -> {out}"

    report = [
        f"number_words ({'attention' if attention else 'no attention'}, {cell}-{hidden}, "
        f"{steps} steps): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
        *(show(i) for i in range(3)),
    ]
    return _result(metrics, res.history, res.params, t0, report)


# ------------------------------------------------------------------------- CTC


def run_ctc(
    *,
    seed: int = 0,
    hidden: int = 96,
    layers: int = 2,
    steps: int = 1500,
    lr: float = 3e-3,
    batch_size: int = 32,
    beam: int = 8,
    num_train: int = 20_000,
    num_test: int = 1000,
    cols_per_step: int = 2,
    eval_every: int = 500,
    progress: bool = True,
    checkpoint_path=None,
) -> dict[str, Any]:
    """Strips of 3-5 real MNIST digits read two columns per step
    (``jaxrnn.tasks.digit_strips``), a deep bidirectional LSTM trained with CTC
    (Graves et al. 2013); label error rate of best-path and prefix-beam decoding on
    1000 held-out strips made of held-out digits."""
    from jaxrnn.ctc import ctc_loss, greedy_decode, label_error_rate, prefix_beam_search
    from jaxrnn.models import apply_batch, make_layer, sequence_model
    from jaxrnn.tasks.digit_strips import digit_strips

    t0 = time.perf_counter()
    data = digit_strips(
        num_train=num_train, num_test=num_test, cols_per_step=cols_per_step, seed=seed
    )
    meta = data.meta
    layer = make_layer("lstm", meta["input_size"], hidden, num_layers=layers, bidirectional=True)
    model = sequence_model(layer, meta["output_size"], readout="all")
    params = model.init(jax.random.key(seed))
    blank = meta["blank"]

    def loss_fn(p, b, key):
        z = apply_batch(model, p, b["x"], b["length"])
        return jnp.mean(ctc_loss(z, b["length"], b["y"], b["label_length"], blank=blank)), {}

    @jax.jit
    def log_probs(p, x, n):
        return jax.nn.log_softmax(apply_batch(model, p, x, n), axis=-1)

    test = data.test
    refs = [list(y[:m]) for y, m in zip(test["y"], test["label_length"])]

    def greedy_ler(p):
        lp = log_probs(p, jnp.asarray(test["x"]), jnp.asarray(test["length"]))
        out, n = greedy_decode(lp, jnp.asarray(test["length"]), blank=blank)
        hyps = [list(o[:m]) for o, m in zip(np.asarray(out), np.asarray(n))]
        return label_error_rate(refs, hyps), lp, hyps

    res = _fit(
        loss_fn,
        params,
        data.train,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        eval_fn=lambda p: {"test_ler_greedy": greedy_ler(p)[0]},
        eval_every=eval_every,
        progress=progress,
        checkpoint_path=checkpoint_path,
        desc="digit_strips",
    )
    ler, lp, hyps = greedy_ler(res.params)
    lp = np.asarray(lp)
    beamed = [
        list(prefix_beam_search(lp[i, : test["length"][i]], beam, blank=blank)[0])
        for i in range(len(refs))
    ]
    metrics = {
        "test_ler_greedy": ler,
        f"test_ler_prefix_beam{beam}": label_error_rate(refs, beamed),
        "test_strips_exact_greedy": float(np.mean([r == h for r, h in zip(refs, hyps)])),
    }

    def show(i):
        return f"  strip {i}: truth {''.join(str(d - 1) for d in refs[i])}, " + (
            f"decoded {''.join(str(d - 1) for d in beamed[i])}"
        )

    report = [
        f"digit_strips (biLSTM-{hidden}x{layers} + CTC, {steps} steps): "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
        *(show(i) for i in range(3)),
    ]
    return _result(metrics, res.history, res.params, t0, report)


# -------------------------------------------------------------------- captions


def run_captions(
    *,
    seed: int = 0,
    hidden: int = 128,
    steps: int = 1000,
    lr: float = 3e-3,
    batch_size: int = 64,
    cell: str = "lstm",
    eval_every: int = 250,
    progress: bool = True,
    checkpoint_path=None,
) -> dict[str, Any]:
    """Spell the name of a real MNIST digit (``jaxrnn.tasks.digit_captions``): a dense
    image encoding conditions the decoder's initial state; the share of the 1000
    held-out digits whose name is spelled exactly, by greedy decoding and by sampling
    at temperature 1."""
    from jaxrnn.seq2seq import encoder_decoder
    from jaxrnn.tasks.digit_captions import digit_captions

    t0 = time.perf_counter()
    data = digit_captions(seed=seed)
    meta = data.meta
    model = encoder_decoder(
        len(meta["target_vocab"]),
        hidden,
        source_features=28,
        source_length=28,
        encoder="dense",
        cell=cell,
        bos=meta["bos"],
        eos=meta["eos"],
    )
    params = model.init(jax.random.key(seed))
    T = meta["target_len"]

    def loss_fn(p, b, key):
        per = jax.vmap(lambda s, t, m: model.loss(p, s, None, t, m))(b["x"], b["y"], b["y_length"])
        return jnp.mean(per), {}

    @jax.jit
    def greedy(p, x):
        return jax.vmap(lambda s: model.greedy(p, s, None, T))(x)

    @jax.jit
    def sampled(p, x, key):
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(lambda s, k: model.sample(p, s, None, T, k))(x, keys)

    test = {k: jnp.asarray(v) for k, v in data.test.items()}

    def eval_fn(p):
        return {
            "test_word_correct": float(
                jnp.mean(_exact(greedy(p, test["x"]), test["y"], test["y_length"]))
            )
        }

    res = _fit(
        loss_fn,
        params,
        data.train,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        eval_fn=eval_fn,
        eval_every=eval_every,
        progress=progress,
        checkpoint_path=checkpoint_path,
        desc="digit_captions",
    )
    g = greedy(res.params, test["x"])
    s = sampled(res.params, test["x"], jax.random.key(seed + 2))
    metrics = {
        "test_word_correct_greedy": float(jnp.mean(_exact(g, test["y"], test["y_length"]))),
        "test_word_correct_sampled": float(jnp.mean(_exact(s, test["y"], test["y_length"]))),
    }
    letters = meta["target_vocab"]

    def spell(toks):
        return "".join(letters[t] for t in np.asarray(toks).tolist() if t > 1)

    rows = [int(np.flatnonzero(data.test["label"] == d)[0]) for d in range(0, 10, 3)]
    report = [
        f"digit_captions (dense image encoding -> {cell}-{hidden} decoder, {steps} steps): "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
        *(
            f"  digit {data.test['label'][i]}: greedy {spell(g[i])!r}, sampled {spell(s[i])!r}"
            for i in rows
        ),
    ]
    return _result(metrics, res.history, res.params, t0, report)


# -------------------------------------------------------------- continual Reber


def run_continual_reber(
    *,
    seed: int = 0,
    cell: str = "lstm",
    hidden: int = 8,
    steps: int = 2560,
    lr: float = 1e-2,
    batch_size: int = 16,
    chunk: int = 50,
    stream_symbols: int = 1000,
    test_symbols: int = 1_000_000,
    external_reset: bool = False,
    progress: bool = True,
    checkpoint_path=None,
) -> dict[str, Any]:
    """Gers et al. 2000's continual embedded Reber grammar: ``cell`` (``"lstm"`` with a
    forget gate, forget bias 1 at initialisation, or ``"lstm_no_forget"``, input-gate
    bias -2 at initialisation) and a linear
    softmax readout, trained by TBPTT(chunk) on ``steps`` chunks of ``batch_size``
    never-reset streams, then run on one fresh stream of ``test_symbols`` symbols
    from its initial state: solved when no prediction in it is wrong. With
    ``external_reset`` the carry is reset at every string start, in training and in
    the test (Gers et al.'s baseline that is told where strings begin)."""
    del progress, checkpoint_path  # one compiled loop; nothing to show or resume
    import optax

    from jaxrnn.cells import lstm, lstm_no_forget
    from jaxrnn.continual import first_error, fit_continual
    from jaxrnn.models import linear
    from jaxrnn.tasks.continual_reber import continual_reber

    if cell not in ("lstm", "lstm_no_forget"):
        raise ValueError(f"cell must be 'lstm' or 'lstm_no_forget', got {cell!r}")
    if (steps * chunk) % stream_symbols:
        raise ValueError(
            f"steps * chunk must be a multiple of stream_symbols ({stream_symbols}), "
            f"got {steps} * {chunk}"
        )
    t0 = time.perf_counter()
    per_stream = stream_symbols // chunk
    num_streams = steps // per_stream * batch_size
    data = continual_reber(
        num_streams=num_streams,
        stream_symbols=stream_symbols,
        test_symbols=test_symbols,
        seed=seed,
    )
    V = data.meta["one_hot"]
    if cell == "lstm":
        c = lstm(V, hidden, forget_bias=1.0)
    else:  # input gates start closed, as in Hochreiter & Schmidhuber 1997
        c = lstm_no_forget(V, hidden, input_bias=-2.0)
    head_init, head = linear(hidden, V)
    k_cell, k_head = jax.random.split(jax.random.key(seed))
    params = (c.init(k_cell), head_init(k_head))
    updates = num_streams // batch_size * per_stream
    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(lr, updates, 0.01))
    )
    res = fit_continual(
        c,
        head,
        params,
        data.train["x"],
        data.train["y"],
        chunk=chunk,
        batch_size=batch_size,
        optimizer=opt,
        num_symbols=V,
        reset=data.train["start"] if external_reset else None,
    )
    test_reset = data.test["start"][0] if external_reset else None
    fe = first_error(
        c, head, res.params, data.test["x"][0], data.test["legal"][0], reset=test_reset
    )
    metrics = {
        "symbols_before_first_error": float(fe),
        "solved": float(fe == test_symbols),
        "final_train_loss": float(np.mean(res.losses[-50:])),
    }
    report = [
        f"continual_reber ({cell}-{hidden}{', external reset' if external_reset else ''}, "
        f"{updates} updates of {batch_size}x{chunk} "
        f"symbols): {fe} of {test_symbols} test symbols predicted before the first error "
        f"({'solved' if fe == test_symbols else 'not solved'}); final train loss "
        f"{metrics['final_train_loss']:.4f} nats (entropy floor about 0.406)",
    ]
    history = [
        {"step": (i + 1) * 100, "train_loss": float(np.mean(res.losses[i * 100 : (i + 1) * 100]))}
        for i in range(len(res.losses) // 100)
    ]
    return _result(metrics, history, res.params, t0, report)


APPLICATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "number_words": run_seq2seq,
    "digit_strips": run_ctc,
    "digit_captions": run_captions,
    "continual_reber": run_continual_reber,
}
