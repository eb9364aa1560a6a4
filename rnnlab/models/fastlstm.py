"""The LSTM recurrence with a hand-written backward pass (`model.impl = "fast"`).

Same parameters, same equations and same gate order (i, f, g, o) as
`LSTMLayer` and `nn.LSTM`; what differs is how the work is laid out. Only
the recurrent product W_hh h_{t-1} is inside the time loop; everything that
does not depend on the recurrence is done once for all T steps:

  forward   a_t = xp_t + W_hh h_{t-1}      xp_t = W_ih x_t + b_ih + b_hh, one GEMM before the loop
            i, f, o = σ(a_i, a_f, a_o)   g = tanh(a_g)
            c_t = f ⊙ c_{t-1} + i ⊙ g      h_t = o ⊙ tanh(c_t)

  backward  (δh_t = ∂L/∂h_t from above plus W_hh^T δa_{t+1};  δc carried from t+1)
            δc_t += δh_t ⊙ o ⊙ (1 − tanh²c_t)
            δa_i = δc_t ⊙ g ⊙ i(1−i)       δa_f = δc_t ⊙ c_{t-1} ⊙ f(1−f)
            δa_g = δc_t ⊙ i ⊙ (1−g²)        δa_o = δh_t ⊙ tanh(c_t) ⊙ o(1−o)
            δc_{t-1} = δc_t ⊙ f             W_hh^T δa_t feeds δh_{t-1}
            ∂L/∂W_hh = Σ_t δa_t h_{t-1}^T   one GEMM over all T·B rows after the loop

The factors g⊙i(1−i), c_{t-1}⊙f(1−f), ... are computed for all steps at once
before the backward loop, so each step is one small GEMM and five pointwise
ops; W_ih, the biases and the layer input get their gradients from autograd
through the input projection (two large GEMMs). nn.LSTM's oneDNN kernel does
the same arithmetic. Which is faster depends on the CPU: with the fold below,
the grimm-char job (batch 64) trained ~15% faster this way on an AVX2 core,
but on the AVX-512 machine of benchmarks/results/speed_char.md it reaches
0.85x the plain nn.LSTM loop's chars/s against 0.98x for the fused kernel,
so presets use `fused`; at batch 20 (the word model) the per-step Python cost
outweighs the gain everywhere.

`lstm_stack` also folds the embedding into the first layer when a batch has
more tokens than the vocabulary has types: W_ih E[x] + b = (E W_ih^T + b)[x],
so a [V, E] × [E, 4H] product and a gather replace the [T·B, E] × [E, 4H]
input GEMM and its two backward GEMMs (exactly the same function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LSTMRecurrence(torch.autograd.Function):
    """(xp [T, B, 4H], h0 [B, H], c0 [B, H], w_hh [4H, H]) → (h [T, B, H], h_T, c_T)."""

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh):
        T, B, G = xp.shape
        H = G // 4
        acts = torch.empty_like(xp)  # gate activations (i, f, g, o), kept for backward
        cs, tanh_cs, hs = (xp.new_empty(T, B, H) for _ in range(3))
        # Per-step views made once, and 0-d tensor constants: at this size an
        # op's Python/dispatch cost is as large as its arithmetic.
        A, XP, C, TC, HS = (v.unbind(0) for v in (acts, xp, cs, tanh_cs, hs))
        I, F_, G_, O = (v.unbind(0) for v in acts.split(H, dim=2))
        two, one = xp.new_tensor(2.0), xp.new_tensor(1.0)
        w_t = w_hh.t()
        h, c = h0, c0
        # tanh(x) = 2σ(2x) − 1: ATen's sigmoid is ~3x faster than its tanh on AVX2,
        # and all four gates then take one sigmoid call.
        for t in range(T):
            torch.addmm(XP[t], h, w_t, out=A[t])
            G_[t].mul_(two)
            A[t].sigmoid_()
            G_[t].mul_(two).sub_(one)
            c = torch.mul(F_[t], c, out=C[t]).addcmul_(I[t], G_[t])
            torch.mul(c, two, out=TC[t]).sigmoid_().mul_(two).sub_(one)
            h = torch.mul(O[t], TC[t], out=HS[t])
        ctx.save_for_backward(acts, cs, tanh_cs, hs, h0, c0, w_hh)
        return hs, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_hs, d_hT, d_cT):
        acts, cs, tanh_cs, hs, h0, c0, w_hh = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        i, f, g, o = acts.split(H, dim=2)
        # Every factor that does not depend on the recurrence, for all steps at
        # once (x − x² = x(1 − x) as one addcmul).
        k = acts.new_empty(T, B, 3, H)  # δa_{i,f,g} = δc ⊙ k
        k_i, k_f, k_g = k.unbind(2)
        torch.addcmul(i, i, i, value=-1, out=k_i).mul_(g)
        torch.addcmul(f, f, f, value=-1, out=k_f)
        k_f[0].mul_(c0)
        k_f[1:].mul_(cs[:-1])
        torch.addcmul(i, i * g, g, value=-1, out=k_g)
        k_o = torch.addcmul(o, o, o, value=-1).mul_(tanh_cs)  # δa_o = δh ⊙ k_o
        k_c = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # δc += δh ⊙ k_c
        d_acts = torch.empty_like(acts)
        DA, DA3, DAo = d_acts.unbind(0), d_acts[:, :, : 3 * H].view(T, B, 3, H).unbind(0), d_acts[:, :, 3 * H :].unbind(0)
        K, KO, KC, FT, DHS = k.unbind(0), k_o.unbind(0), k_c.unbind(0), f.unbind(0), d_hs.unbind(0)
        dh, dc = d_hT.clone(), d_cT.clone()
        for t in range(T - 1, -1, -1):
            dh_t = dh.add_(DHS[t])
            dc.addcmul_(dh_t, KC[t])
            torch.mul(dc[:, None, :], K[t], out=DA3[t])
            torch.mul(dh_t, KO[t], out=DAo[t])
            dc.mul_(FT[t])
            dh = torch.mm(DA[t], w_hh)
        d_w = None
        if ctx.needs_input_grad[3]:  # Σ_t δa_t h_{t-1}^T as one GEMM
            d_w = d_acts[0].t().mm(h0)
            if T > 1:
                d_w.addmm_(d_acts[1:].reshape(-1, G).t(), hs[:-1].reshape(-1, H))
        return d_acts, dh, dc, d_w


def lstm_stack(layers, x: torch.Tensor, state: tuple, dropout: float, training: bool, embedding=None):
    """Run LSTMLayer parameters over x [T, B, I] (or token ids [T, B] with
    `embedding` [V, I]); state (h, c) of [L, B, H]. Returns ([T, B, H], (h, c))."""
    h0, c0 = state
    finals_h, finals_c = [], []
    for l, layer in enumerate(layers):
        bias = layer.bias_ih if layer.bias_hh is None else layer.bias_ih + layer.bias_hh
        if l == 0 and embedding is not None:
            if embedding.shape[0] < x.numel():  # fewer token types than tokens: fold (see module docstring)
                xp = F.embedding(x, F.linear(embedding, layer.weight_ih, bias))
            else:
                xp = F.linear(F.embedding(x, embedding), layer.weight_ih, bias)
        else:
            if l > 0:
                x = F.dropout(x, dropout, training)
            xp = F.linear(x, layer.weight_ih, bias)
        x, h, c = LSTMRecurrence.apply(xp, h0[l], c0[l], layer.weight_hh)
        finals_h.append(h)
        finals_c.append(c)
    return x, (torch.stack(finals_h), torch.stack(finals_c))
