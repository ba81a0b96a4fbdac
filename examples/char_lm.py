"""Character-level language model with sampling, on an offline text.

An LSTM reads one-hot characters of CPython's ``pydoc_data`` help texts (or ``--text
FILE``) and predicts the next one; we report test bits per character next to the
uniform and unigram baselines, then sample from the model.

    python examples/char_lm.py --steps 600
"""

import argparse
import time

import jax
import jax.numpy as jnp

from jaxrnn import tasks
from jaxrnn.models import generate, make_layer, objective, sequence_model
from jaxrnn.tasks.char_lm import decode, encode
from jaxrnn.train import evaluate_batched, fit, make_optimizer

parser = argparse.ArgumentParser()
parser.add_argument("--text", default=None, help="a UTF-8 text file (default: pydoc_data)")
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--steps", type=int, default=600)
parser.add_argument("--seq-len", type=int, default=64)
args = parser.parse_args()

data = tasks.char_lm(args.text, seq_len=args.seq_len)
vocab, V = data.meta["vocab"], data.meta["one_hot"]
model = sequence_model(make_layer("lstm", V, args.hidden), V, readout="all")
loss_fn, metric_fn = objective(model, "tagging", one_hot=V)  # ids -> one-hot inside

t0 = time.perf_counter()
result = fit(
    loss_fn,
    model.init(jax.random.key(0)),
    data.train,
    steps=args.steps,
    batch_size=32,
    key=jax.random.key(1),
    optimizer=make_optimizer("adam", 3e-3, clip_norm=1.0, decay_steps=args.steps),
)
test = evaluate_batched(metric_fn, result.params, data.test, batch_size=256)
print(
    f"test {test['bpc']:.3f} bits/char after {args.steps} steps "
    f"({time.perf_counter() - t0:.0f} s); "
    f"uniform {data.meta['uniform_bpc']:.2f}, unigram {data.meta['unigram_bpc']:.2f}"
)

one_hot = lambda t: jax.nn.one_hot(t, V, dtype=jnp.float32)  # noqa: E731
prompt = "The "
tokens = generate(
    model,
    result.params,
    one_hot(jnp.asarray(encode(prompt, vocab))),
    300,
    jax.random.key(2),
    embed=one_hot,
    temperature=0.7,
)
print(prompt + decode(tokens, vocab))
