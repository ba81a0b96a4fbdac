"""Seed 002's simple recurrent network: learn the next letter of "abc", "bcd", ...

The seed trains an Elman SRN (tanh hidden layer of 10 units, softmax output) by hand-
written BPTT and prints ``c.next=`` and ``fg.next=``. Here the same network is a
``jaxrnn.rnn`` cell plus a linear readout; ``jax.grad`` does the BPTT and optax the
update. Expected output: ``c.next= d`` and ``fg.next= h``.

    python examples/next_letter_srn.py
"""

import jax
import jax.numpy as jnp
import optax

import jaxrnn
from jaxrnn.models import objective, sequence_model
from jaxrnn.tasks import next_letter
from jaxrnn.tasks.next_letter import ALPHABET, decode, encode
from jaxrnn.train import fit

data = next_letter()  # the seed's x_data / y_data, one-hot, padded with lengths
V = len(ALPHABET)
model = sequence_model(jaxrnn.rnn(V, 10), V, readout="all")  # h = tanh(U x + W h), y = V h
loss_fn, metric_fn = objective(model, "tagging")

result = fit(
    loss_fn,
    model.init(jax.random.key(0)),
    data.train,
    steps=300,
    batch_size=7,  # all seven strings every step
    key=jax.random.key(1),
    optimizer=optax.adam(3e-2),
    progress=False,
)
metrics = metric_fn(result.params, data.train)
print("train metrics:", {k: round(float(v), 4) for k, v in metrics.items()})
for prompt in ("c", "fg"):
    logits = model.apply(result.params, jnp.asarray(encode(prompt)))
    print(f"{prompt}.next=", decode(jnp.argmax(logits[-1])))
