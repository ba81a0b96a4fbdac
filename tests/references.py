"""Independent references for the cell battery: the papers' equations transcribed in
NumPy (float64), and PyTorch where it has the cell.

Each reference is ``ref(params, carry0, xs) -> ys (T, O)`` for one sequence, written
from the equations in the papers (not from jaxrnn's code): loops over time, explicit
gate splits, children lists for trees. ``carry0`` is the cell's own initial carry
(zeros, or a learned state, or dropout masks), converted to NumPy.
"""

from __future__ import annotations

import math

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _np(tree):
    if tree is None:
        return None
    if isinstance(tree, tuple) and not hasattr(tree, "shape"):
        return (
            type(tree)(*(_np(a) for a in tree))
            if hasattr(tree, "_fields")
            else tuple(_np(a) for a in tree)
        )
    return np.asarray(tree, np.float64)


def _bias(b, n):
    return np.zeros(n) if b is None else b


def _run(step, state, xs):
    ys = []
    for x in xs:
        state, y = step(state, x)
        ys.append(y)
    return np.stack(ys)


# ------------------------------------------------------------------------ Elman family


def elman(nonlinearity="tanh"):
    """Elman (1990): h' = phi(W_ih x + b_ih + W_hh h + b_hh)."""
    phi = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))

    def ref(params, carry0, xs):
        w_ih, w_hh, b_ih, b_hh = _np(tuple(params))
        H = w_hh.shape[0]
        b = _bias(b_ih, H) + _bias(b_hh, H)
        return _run(lambda h, x: (phi(w_ih @ x + w_hh @ h + b),) * 2, _np(carry0), _np(xs))

    return ref


def indrnn(params, carry0, xs):
    """Li et al. (2018): h' = tanh(W x + u * h + b)."""
    w_ih, u, b = _np(tuple(params))
    b = _bias(b, u.shape[0])
    return _run(lambda h, x: (np.tanh(w_ih @ x + u * h + b),) * 2, _np(carry0), _np(xs))


def clockwork(periods):
    """Koutnik et al. (2014): module k (rows of block k) is recomputed when t mod T_k = 0
    (t = 0, 1, ...), from W_I x + W_H h + b with W_H block upper-triangular; else kept."""

    def ref(params, carry0, xs):
        w_ih, w_hh, b = _np(tuple(params))
        H = w_hh.shape[0]
        m = H // len(periods)
        b = _bias(b, H)
        h = _np(carry0.h)
        ys = []
        for t, x in enumerate(_np(xs)):
            new = h.copy()
            for k, T_k in enumerate(periods):
                if t % T_k == 0:
                    rows = slice(k * m, (k + 1) * m)
                    a = w_ih[rows] @ x + b[rows]
                    for j in range(k, len(periods)):  # slower (or same) modules only
                        cols = slice(j * m, (j + 1) * m)
                        a = a + w_hh[rows, cols] @ h[cols]
                    new[rows] = np.tanh(a)
            h = new
            ys.append(h)
        return np.stack(ys)

    return ref


# -------------------------------------------------------------------------- GRU family


def _gru_gates(params, H):
    w_ih, w_hh, b_ih, b_hh = _np(tuple(params))
    W = np.split(w_ih, 3)
    U = np.split(w_hh, 3)
    bi = np.split(_bias(b_ih, 3 * H), 3)
    bh = np.split(_bias(b_hh, 3 * H), 3)
    return W, U, bi, bh


def gru(params, carry0, xs):
    """PyTorch's GRUCell: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    H = np.asarray(params.w_hh).shape[1]
    (Wr, Wz, Wn), (Ur, Uz, Un), (bir, biz, bin_), (bhr, bhz, bhn) = _gru_gates(params, H)

    def step(h, x):
        r = sigmoid(Wr @ x + bir + Ur @ h + bhr)
        z = sigmoid(Wz @ x + biz + Uz @ h + bhz)
        n = np.tanh(Wn @ x + bin_ + r * (Un @ h + bhn))
        h = (1 - z) * n + z * h
        return h, h

    return _run(step, _np(carry0), _np(xs))


def cho_gru(params, carry0, xs):
    """Cho et al. (2014) eqs. 5-8: h~ = tanh(W x + U (r * h)); h = z h + (1 - z) h~."""
    H = np.asarray(params.w_hh).shape[1]
    (Wr, Wz, W), (Ur, Uz, U), (bir, biz, bi), (bhr, bhz, bh) = _gru_gates(params, H)

    def step(h, x):
        r = sigmoid(Wr @ x + Ur @ h + bir + bhr)
        z = sigmoid(Wz @ x + Uz @ h + biz + bhz)
        h_tilde = np.tanh(W @ x + bi + U @ (r * h) + bh)
        h = z * h + (1 - z) * h_tilde
        return h, h

    return _run(step, _np(carry0), _np(xs))


def mgu(params, carry0, xs):
    """Zhou et al. (2016): f = s(W_f [h, x] + b_f); h~ = tanh(W_h [f*h, x] + b_h);
    h = (1 - f) h + f h~ (W_f = [U_f, W_if] column blocks)."""
    w_ih, w_hh, b_ih, b_hh = _np(tuple(params))
    H = w_hh.shape[1]
    W_f = np.concatenate([w_hh[:H], w_ih[:H]], axis=1)
    W_h = np.concatenate([w_hh[H:], w_ih[H:]], axis=1)
    b = _bias(b_ih, 2 * H) + _bias(b_hh, 2 * H)
    b_f, b_h = b[:H], b[H:]

    def step(h, x):
        f = sigmoid(W_f @ np.concatenate([h, x]) + b_f)
        h_tilde = np.tanh(W_h @ np.concatenate([f * h, x]) + b_h)
        h = (1 - f) * h + f * h_tilde
        return h, h

    return _run(step, _np(carry0), _np(xs))


# ------------------------------------------------------------------------- LSTM family


def _lstm_pre(params, x, h):
    w_ih, w_hh, b_ih, b_hh = (_np(getattr(params, k)) for k in ("w_ih", "w_hh", "b_ih", "b_hh"))
    n = w_ih.shape[0]
    return w_ih @ x + w_hh @ h + _bias(b_ih, n) + _bias(b_hh, n)


def lstm(params, carry0, xs):
    """Hochreiter & Schmidhuber 1997 with the forget gate (Gers et al. 2000), torch order
    i, f, g, o; LSTMP (Sak et al. 2014): h = W_hr (o * tanh(c))."""
    w_hr = _np(params.w_hr)

    def step(state, x):
        h, c = state
        i, f, g, o = np.split(_lstm_pre(params, x, h), 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        if w_hr is not None:
            h = w_hr @ h
        return (h, c), h

    return _run(step, (_np(carry0.h), _np(carry0.c)), _np(xs))


def lstm_no_forget(params, carry0, xs):
    """Hochreiter & Schmidhuber (1997): the LSTM with f fixed to 1, c = c + i * g (rows
    i, g, o): the forget-gate LSTM's gate rows with the f block removed."""

    def step(state, x):
        h, c = state
        a_i, a_g, a_o = np.split(_lstm_pre(params, x, h), 3)
        f = 1.0
        c = f * c + sigmoid(a_i) * np.tanh(a_g)
        h = sigmoid(a_o) * np.tanh(c)
        return (h, c), h

    return _run(step, (_np(carry0.h), _np(carry0.c)), _np(xs))


def peephole_lstm(sigma_h=np.tanh):
    """Gers & Schmidhuber (2000): i, f peek at c_{t-1}, o at c_t; h = o * sigma_h(c)."""

    def ref(params, carry0, xs):
        w_ci, w_cf, w_co = _np(params.w_ci), _np(params.w_cf), _np(params.w_co)
        w_hr = _np(params.w_hr)

        def step(state, x):
            h, c_prev = state
            a_i, a_f, a_g, a_o = np.split(_lstm_pre(params, x, h), 4)
            i = sigmoid(a_i + w_ci * c_prev)
            f = sigmoid(a_f + w_cf * c_prev)
            c = f * c_prev + i * np.tanh(a_g)
            o = sigmoid(a_o + w_co * c)
            h = o * sigma_h(c)
            if w_hr is not None:
                h = w_hr @ h
            return (h, c), h

        return _run(step, (_np(carry0.h), _np(carry0.c)), _np(xs))

    return ref


def cifg_lstm(params, carry0, xs):
    """Greff et al. (2017) CIFG: i = 1 - f (gate rows f, g, o)."""

    def step(state, x):
        h, c = state
        a_f, a_g, a_o = np.split(_lstm_pre(params, x, h), 3)
        f = sigmoid(a_f)
        c = f * c + (1 - f) * np.tanh(a_g)
        h = sigmoid(a_o) * np.tanh(c)
        return (h, c), h

    return _run(step, (_np(carry0.h), _np(carry0.c)), _np(xs))


def layer_norm_lstm(eps):
    """Ba et al. (2016): gates = LN(W_h h) + LN(W_x x) + b; h = s(o) tanh(LN(c))."""

    def ln(z, g, b):
        mu = z.sum() / z.size
        sd = math.sqrt(((z - mu) ** 2).sum() / z.size + eps)
        return g * (z - mu) / sd + b

    def ref(params, carry0, xs):
        p = _np(tuple(params))
        w_ih, w_hh, b, g_ih, be_ih, g_hh, be_hh, g_c, be_c = p
        b = _bias(b, w_ih.shape[0])

        def step(state, x):
            h, c = state
            i, f, g, o = np.split(ln(w_hh @ h, g_hh, be_hh) + ln(w_ih @ x, g_ih, be_ih) + b, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(ln(c, g_c, be_c))
            return (h, c), h

        return _run(step, (_np(carry0.h), _np(carry0.c)), _np(xs))

    return ref


# ------------------------------------------------------------------------------- trees


def child_sum_tree(params, features, parents):
    """Tai et al. (2015) §3.1 on an explicit tree: children lists, one forget gate per
    child; returns every node's h (topological order)."""
    w_ih, w_hh, b_ih, b_hh = _np(tuple(params))
    H = w_hh.shape[1]
    Wi, Wf, Wu, Wo = np.split(w_ih, 4)
    Ui, Uf, Uu, Uo = np.split(w_hh, 4)
    bi_, bf_, bu_, bo_ = np.split(_bias(b_ih, 4 * H) + _bias(b_hh, 4 * H), 4)
    hs, cs = {}, {}
    for j, x in enumerate(np.asarray(features, np.float64)):
        kids = [k for k in range(j) if parents[k] == j]
        h_tilde = sum((hs[k] for k in kids), np.zeros(H))
        i = sigmoid(Wi @ x + Ui @ h_tilde + bi_)
        o = sigmoid(Wo @ x + Uo @ h_tilde + bo_)
        u = np.tanh(Wu @ x + Uu @ h_tilde + bu_)
        c = i * u
        for k in kids:
            c = c + sigmoid(Wf @ x + Uf @ hs[k] + bf_) * cs[k]
        hs[j], cs[j] = o * np.tanh(c), c
    return np.stack([hs[j] for j in range(len(hs))])


def tree_lstm(params, carry0, xs):
    xs = np.asarray(xs, np.float64)
    return child_sum_tree(params, xs[:, :-1], np.round(xs[:, -1]).astype(int))


# ---------------------------------------------------------------------------- wrappers


def learned_initial_state(inner):
    """The wrapped cell's reference started from the learned carry in the params."""

    def ref(params, carry0, xs):
        return inner(params.cell, params.carry0, xs)

    return ref


def conditional(inner, cond_size):
    """h_0 = W z + b (per carry leaf, reshaped) with z = x_0[:C]; then the inner cell on
    x_t[C:]."""

    def ref(params, carry0, xs):
        xs = np.asarray(xs, np.float64)
        z = xs[0, :cond_size]
        w, b = _np(params.state_map.w), _np(params.state_map.b)
        leaves = [wk @ z + bk for wk, bk in zip(w, b)]
        start = leaves[0] if len(leaves) == 1 else type(carry0.state)(*leaves)
        return inner(params.cell, start, xs[:, cond_size:])

    return ref


def variational_dropout_gru(params, carry0, xs):
    """Gal & Ghahramani (2016) on PyTorch's GRU, as Keras's recurrent_dropout: the same
    masks at every step on x and on the h entering the recurrent products (not z * h)."""
    H = np.asarray(params.w_hh).shape[1]
    (Wr, Wz, Wn), (Ur, Uz, Un), (bir, biz, bin_), (bhr, bhz, bhn) = _gru_gates(params, H)
    m_x, m_h = _np(carry0.input_mask), _np(carry0.recurrent_mask)

    def step(h, x):
        x, hd = m_x * x, m_h * h
        r = sigmoid(Wr @ x + bir + Ur @ hd + bhr)
        z = sigmoid(Wz @ x + biz + Uz @ hd + bhz)
        n = np.tanh(Wn @ x + bin_ + r * (Un @ hd + bhn))
        h = (1 - z) * n + z * h
        return h, h

    return _run(step, _np(carry0.state), _np(xs))


def zoneout_expectation_lstm(z_h, z_c):
    """Krueger et al. (2017) at test time: c = z_c c_prev + (1 - z_c) c_new, same for h."""

    def ref(params, carry0, xs):
        def step(state, x):
            h, c = state
            i, f, g, o = np.split(_lstm_pre(params, x, h), 4)
            c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h_new = sigmoid(o) * np.tanh(c_new)
            c = z_c * c + (1 - z_c) * c_new
            h = z_h * h + (1 - z_h) * h_new
            return (h, c), h

        return _run(step, (_np(carry0.state.h), _np(carry0.state.c)), _np(xs))

    return ref


# ------------------------------------------------------- modern diagonal recurrences


def _g(a):
    """Feng et al. (2024), appendix B: g(x) = x + 0.5 if x >= 0 else sigmoid(x)."""
    return np.where(a >= 0, a + 0.5, sigmoid(a))


def min_gru(params, carry0, xs):
    """Feng et al. (2024), minGRU (sequential mode, algorithm 1 with g of appendix B):
    z = sigma(Linear_z(x)), h~ = g(Linear_h(x)), h = (1 - z) h + z h~."""
    w, b = _np(tuple(params))
    H = w.shape[0] // 2
    b = _bias(b, 2 * H)

    def step(h, x):
        z = sigmoid(w[:H] @ x + b[:H])
        h = (1 - z) * h + z * _g(w[H:] @ x + b[H:])
        return h, h

    return _run(step, _np(carry0), _np(xs))


def min_lstm(params, carry0, xs):
    """Feng et al. (2024), minLSTM (sequential mode, algorithm 3): f, i = sigma(...),
    f' = f / (f + i), i' = i / (f + i), h = f' h + i' g(Linear_h(x))."""
    w, b = _np(tuple(params))
    H = w.shape[0] // 3
    b = _bias(b, 3 * H)

    def step(h, x):
        f = sigmoid(w[:H] @ x + b[:H])
        i = sigmoid(w[H : 2 * H] @ x + b[H : 2 * H])
        h = f / (f + i) * h + i / (f + i) * _g(w[2 * H :] @ x + b[2 * H :])
        return h, h

    return _run(step, _np(carry0), _np(xs))


def lru(params, carry0, xs):
    """Orvieto et al. (2023), appendix A, in complex NumPy: lambda = exp(-exp(nu_log) +
    i exp(theta_log)), h = lambda h + exp(gamma_log) (B u), y = Re(C h) + D u."""
    nu_log, theta_log, gamma_log, b_re, b_im, c_re, c_im, d = _np(tuple(params))
    lam = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
    B = (b_re + 1j * b_im) * np.exp(gamma_log)[:, None]
    C = c_re + 1j * c_im

    def step(h, u):
        h = lam * h + B @ u
        return h, (C @ h).real + d @ u

    return _run(step, _np(carry0.re) + 1j * _np(carry0.im), _np(xs))


def rg_lru(c=8.0):
    """De et al. (2024), Griffin equations 1-4: r = sigma(W_a x + b_a), i = sigma(W_x x +
    b_x), a_t = sigma(Lambda)^(c r), h = a_t h + sqrt(1 - a_t^2) (i x); x <- W_in x first
    when the cell has W_in."""

    def ref(params, carry0, xs):
        w_a, b_a, w_x, b_x, lam, w_in = _np(tuple(params))

        def step(h, x):
            if w_in is not None:
                x = w_in @ x
            a = sigmoid(lam) ** (c * sigmoid(w_a @ x + b_a))
            h = a * h + np.sqrt(1 - a**2) * (sigmoid(w_x @ x + b_x) * x)
            return h, h

        return _run(step, _np(carry0), _np(xs))

    return ref


def slstm(forget_gate="sigmoid"):
    """Beck et al. (2024), xLSTM section 2.2, *unstabilised*: i = exp(i~), f = sigma(f~)
    (or exp(f~)), c = f c + i tanh(z~), n = f n + i, h = sigma(o~) c / n, with
    g~ = W_g x + R_g h + b_g and R_g block-diagonal over heads (gate order i, f, z, o)."""

    def ref(params, carry0, xs):
        w, r, b = _np(tuple(params))
        _, K, d, _ = r.shape
        H = K * d
        R = np.zeros((4, H, H))
        for g in range(4):
            for k in range(K):
                R[g, k * d : (k + 1) * d, k * d : (k + 1) * d] = r[g, k]
        fg = sigmoid if forget_gate == "sigmoid" else np.exp

        def step(state, x):
            c, n, h = state
            pre = [w[g * H : (g + 1) * H] @ x + R[g] @ h + b[g * H : (g + 1) * H] for g in range(4)]
            i, f = np.exp(pre[0]), fg(pre[1])
            c = f * c + i * np.tanh(pre[2])
            n = f * n + i
            h = sigmoid(pre[3]) * c / n
            return (c, n, h), h

        z = np.zeros(H)
        return _run(step, (z, z, z), _np(xs))

    return ref


def mlstm(num_heads, forget_gate="sigmoid"):
    """Beck et al. (2024), xLSTM section 2.3, *unstabilised*, per head:
    C = f C + i v k^T, n = f n + i k, h = o * C q / max(|n^T q|, 1), with i = exp(i~),
    f = sigma(f~) (or exp(f~)), k = W_k x / sqrt(d) + b_k."""

    def ref(params, carry0, xs):
        wq, bq, wk, bk, wv, bv, wo, bo, wi, bi, wf, bf = _np(tuple(params))
        H = wq.shape[0]
        K, d = num_heads, H // num_heads
        fg = sigmoid if forget_gate == "sigmoid" else np.exp

        def step(state, x):
            C, n = state
            q = (wq @ x + bq).reshape(K, d)
            k = (wk @ x / math.sqrt(d) + bk).reshape(K, d)
            v = (wv @ x + bv).reshape(K, d)
            i, f = np.exp(wi @ x + bi), fg(wf @ x + bf)
            o = sigmoid(wo @ x + bo)
            h = np.zeros(H)
            C, n = C.copy(), n.copy()
            for j in range(K):
                C[j] = f[j] * C[j] + i[j] * np.outer(v[j], k[j])
                n[j] = f[j] * n[j] + i[j] * k[j]
                h[j * d : (j + 1) * d] = C[j] @ q[j] / max(abs(n[j] @ q[j]), 1.0)
            return (C, n), o * h

        return _run(step, (np.zeros((K, d, d)), np.zeros((K, d))), _np(xs))

    return ref


# ------------------------------------------------------------------------------ PyTorch


def torch_cell(cell, params, carry0, xs):
    """``jaxrnn.to_torch(cell, params)`` (an ``nn.RNNCell/GRUCell/LSTMCell``) stepped over
    ``xs``; for an LSTM with a projection, a one-layer ``nn.LSTM`` with ``proj_size``."""
    import torch

    import jaxrnn

    x = torch.tensor(np.asarray(xs, np.float64))
    if getattr(params, "w_hr", None) is not None:
        H, P = params.w_hr.shape[1], params.w_hr.shape[0]
        module = torch.nn.LSTM(x.shape[1], H, proj_size=P, bias=params.b_ih is not None)
        module = module.double()
        with torch.no_grad():
            for name, value in (
                ("weight_ih_l0", params.w_ih),
                ("weight_hh_l0", params.w_hh),
                ("bias_ih_l0", params.b_ih),
                ("bias_hh_l0", params.b_hh),
                ("weight_hr_l0", params.w_hr),
            ):
                if value is not None:
                    getattr(module, name).copy_(torch.tensor(np.asarray(value)))
            return module(x)[0].numpy()
    module = jaxrnn.to_torch(cell, params)
    state = None
    ys = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            state = module(x[t][None], state)
            ys.append((state[0] if isinstance(state, tuple) else state)[0].numpy())
    return np.stack(ys)
