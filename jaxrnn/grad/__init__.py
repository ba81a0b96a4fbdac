"""Gradients of recurrent networks: BPTT, truncated and checkpointed BPTT, exact RTRL
(dense and element-wise), SnAp-1, UORO, RFLO, online learners and diagnostics.

Every method has the same call (DESIGN.md §2)::

    grad_fn = jaxrnn.grad.rtrl(cell, step_loss)      # or bptt, tbptt(cell, loss, k), ...
    loss, (cell_grads, head_grads) = grad_fn((cell_params, head_params), xs, targets)

where ``step_loss(head_params, y_t, target_t)`` is the per-step loss of a readout with its
own parameters and the sequence loss is its sum over ``t`` (steps where the optional
``mask (T,)`` is 0 add nothing and leave the carry unchanged).

=============  =========================  ============  ===============  ===================
method         gradient                   time / step   memory           cells
=============  =========================  ============  ===============  ===================
``bptt``       exact (offline)            O(P)          O(T S)           all
checkpointed   exact (offline)            O(P), 4/3x    O(sqrt(T) S)     all
``tbptt(k)``   truncated, biased          O(P)          O(k S)           all
``rtrl``       exact, online              O(S^2 P)      O(S P)           all
diagonal rtrl  exact, online              O(P)          O(P)             element-wise
``snap1``      biased, deterministic      O(S P)        O(K P)           all
``uoro``       unbiased, high variance    O(P)          O(S + P)         all
``rflo``       biased (= TBPTT(1) at a=1) O(P)          O(P)             Elman-type
=============  =========================  ============  ===============  ===================
"""

from jaxrnn.grad._common import FlatCell, ForwardMethod, forward_grad_fn
from jaxrnn.grad.bptt import bptt, sequence_loss, tbptt
from jaxrnn.grad.diagnostics import cosine, hidden_grad_norms, relative_error
from jaxrnn.grad.diagonal import DiagonalContext, check_diagonal
from jaxrnn.grad.online import METHODS, OnlineLearner, OnlineState, online
from jaxrnn.grad.registry import (
    GRADIENT_METHODS,
    GradientMethod,
    gradient_method,
    make_grad_fn,
)
from jaxrnn.grad.rflo import RFLOContext, rflo
from jaxrnn.grad.rtrl import rtrl
from jaxrnn.grad.snap import SnapContext, snap1
from jaxrnn.grad.uoro import UOROTrace, uoro

__all__ = [
    "GRADIENT_METHODS",
    "METHODS",
    "DiagonalContext",
    "FlatCell",
    "ForwardMethod",
    "GradientMethod",
    "OnlineLearner",
    "OnlineState",
    "RFLOContext",
    "SnapContext",
    "UOROTrace",
    "bptt",
    "check_diagonal",
    "cosine",
    "forward_grad_fn",
    "gradient_method",
    "hidden_grad_norms",
    "make_grad_fn",
    "online",
    "relative_error",
    "rflo",
    "rtrl",
    "sequence_loss",
    "snap1",
    "tbptt",
    "uoro",
]
