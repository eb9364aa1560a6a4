"""The course exercise "GRU gradients by hand", as code: dE₂/dW for every
weight of a two-step, bias-free GRU with the reset gate applied *before* the
recurrent product, derived by the chain rule and checked against autograd.

The cell (rnnlab's names and PyTorch's gate order r, z, n; column vectors):

    r_t = σ(W_ir x_t + W_hr h_{t-1})
    z_t = σ(W_iz x_t + W_hz h_{t-1})
    n_t = tanh(W_in x_t + W_hn (r_t ⊙ h_{t-1}))          reset *before* W_hn
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}                 gru_z = "old" (rnnlab's default)
    h_t = z_t ⊙ n_t + (1 − z_t) ⊙ h_{t-1}                 gru_z = "new"

and the error at t = 2 is E₂ = ½‖h₂ − y‖². The equations are written out
here on purpose, not imported from rnnlab's cells: the exercise is to see
every factor of the chain rule, and a check that reused the cell under test
would prove nothing. The derivation in words is docs/guide/gru-gradients.md.

δ notation: δv = ∂E₂/∂v, the total derivative of E₂ with respect to v.
Backward through one step, given δh_t:

    δz_t  = δh_t ⊙ (h_{t-1} − n_t)        (gru_z="old"; "new" flips the sign)
    δn_t  = δh_t ⊙ (1 − z_t)              ("new": δh_t ⊙ z_t)
    δâ_n  = δn_t ⊙ (1 − n_t²)             pre-activation of n
    δq_t  = W_hnᵀ δâ_n                    q_t = r_t ⊙ h_{t-1}
    δâ_r  = δq_t ⊙ h_{t-1} ⊙ r_t (1 − r_t)
    δâ_z  = δz_t ⊙ z_t (1 − z_t)
    ∂E₂/∂W_i· += δâ_· x_tᵀ,  ∂E₂/∂W_hr += δâ_r h_{t-1}ᵀ,  ∂E₂/∂W_hz += δâ_z h_{t-1}ᵀ,
    ∂E₂/∂W_hn += δâ_n q_tᵀ
    δh_{t-1} = δh_t ⊙ z_t + δq_t ⊙ r_t + W_hrᵀ δâ_r + W_hzᵀ δâ_z    ("new": (1 − z_t) in the first term)

E₂ reaches the weights twice: through step 2 directly, and through h₁,
which step 1 computed with the same weights. `hand_gradients` returns both
parts separately ("t2": h₁ held fixed, the expression the course asks for
first; "total": the true gradient, t2 + the step-1 term).
"""

from __future__ import annotations

import numpy as np

WEIGHTS = ("W_ir", "W_iz", "W_in", "W_hr", "W_hz", "W_hn")


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def random_problem(input_size: int = 3, hidden: int = 4, seed: int = 0) -> dict:
    """Random float64 weights, inputs x₁, x₂, start state h₀ and target y."""
    rng = np.random.default_rng(seed)
    problem = {name: rng.normal(0.0, 0.7, (hidden, input_size if name[2] == "i" else hidden))
               for name in WEIGHTS}
    problem.update(x1=rng.normal(size=input_size), x2=rng.normal(size=input_size),
                   h0=rng.normal(0.0, 0.5, hidden), y=rng.normal(size=hidden))
    return problem


def _step(p: dict, x: np.ndarray, h_prev: np.ndarray, gru_z: str) -> dict:
    r = _sigmoid(p["W_ir"] @ x + p["W_hr"] @ h_prev)
    z = _sigmoid(p["W_iz"] @ x + p["W_hz"] @ h_prev)
    q = r * h_prev
    n = np.tanh(p["W_in"] @ x + p["W_hn"] @ q)
    keep = z if gru_z == "old" else 1.0 - z  # the share of h_{t-1} carried over
    h = (1.0 - keep) * n + keep * h_prev
    return {"x": x, "h_prev": h_prev, "r": r, "z": z, "q": q, "n": n, "keep": keep, "h": h}


def _step_backward(p: dict, s: dict, dh: np.ndarray, gru_z: str) -> tuple[dict, np.ndarray]:
    """The gradients of one step's weights and δh_{t-1}, given δh_t (the formulas above)."""
    sign = 1.0 if gru_z == "old" else -1.0  # ∂keep/∂z
    dz = sign * dh * (s["h_prev"] - s["n"])
    da_n = dh * (1.0 - s["keep"]) * (1.0 - s["n"] ** 2)
    dq = p["W_hn"].T @ da_n
    da_r = dq * s["h_prev"] * s["r"] * (1.0 - s["r"])
    da_z = dz * s["z"] * (1.0 - s["z"])
    grads = {"W_ir": np.outer(da_r, s["x"]), "W_iz": np.outer(da_z, s["x"]), "W_in": np.outer(da_n, s["x"]),
             "W_hr": np.outer(da_r, s["h_prev"]), "W_hz": np.outer(da_z, s["h_prev"]),
             "W_hn": np.outer(da_n, s["q"])}
    dh_prev = dh * s["keep"] + dq * s["r"] + p["W_hr"].T @ da_r + p["W_hz"].T @ da_z
    return grads, dh_prev


def forward(problem: dict, gru_z: str = "old") -> tuple[float, dict, dict]:
    """(E₂, step-1 values, step-2 values)."""
    s1 = _step(problem, problem["x1"], problem["h0"], gru_z)
    s2 = _step(problem, problem["x2"], s1["h"], gru_z)
    return 0.5 * float(np.sum((s2["h"] - problem["y"]) ** 2)), s1, s2


def hand_gradients(problem: dict, gru_z: str = "old") -> dict[str, dict[str, np.ndarray]]:
    """{"t2": ∂E₂/∂W through step 2 only, "total": the full ∂E₂/∂W}, per weight."""
    if gru_z not in ("old", "new"):
        raise ValueError(f"gru_z must be 'old' or 'new', got {gru_z!r}")
    _, s1, s2 = forward(problem, gru_z)
    dh2 = s2["h"] - problem["y"]  # δh₂ = ∂(½‖h₂ − y‖²)/∂h₂
    at_t2, dh1 = _step_backward(problem, s2, dh2, gru_z)
    at_t1, _ = _step_backward(problem, s1, dh1, gru_z)
    return {"t2": at_t2, "total": {k: at_t2[k] + at_t1[k] for k in WEIGHTS}}


def autograd_gradients(problem: dict, gru_z: str = "old") -> dict[str, dict[str, np.ndarray]]:
    """The same two sets of gradients from torch autograd on the same equations."""
    import torch

    out = {}
    for part in ("t2", "total"):
        w = {k: torch.tensor(problem[k], dtype=torch.float64, requires_grad=True) for k in WEIGHTS}
        x1, x2, h0, y = (torch.tensor(problem[k], dtype=torch.float64) for k in ("x1", "x2", "h0", "y"))

        def step(x, h):
            r = torch.sigmoid(w["W_ir"] @ x + w["W_hr"] @ h)
            z = torch.sigmoid(w["W_iz"] @ x + w["W_hz"] @ h)
            n = torch.tanh(w["W_in"] @ x + w["W_hn"] @ (r * h))
            return (1 - z) * n + z * h if gru_z == "old" else z * n + (1 - z) * h

        h1 = step(x1, h0)
        # Detaching h₁ cuts the path through step 1: what is left is step 2's own term.
        h2 = step(x2, h1.detach() if part == "t2" else h1)
        (0.5 * ((h2 - y) ** 2).sum()).backward()
        out[part] = {k: w[k].grad.numpy() for k in WEIGHTS}
    return out


def compare(seed: int = 0, input_size: int = 3, hidden: int = 4, gru_z: str = "old") -> list[dict]:
    """One row per (part, weight): max |hand − autograd| and max |autograd|."""
    problem = random_problem(input_size, hidden, seed)
    hand, auto = hand_gradients(problem, gru_z), autograd_gradients(problem, gru_z)
    return [{"part": part, "weight": k, "max_abs_error": float(np.max(np.abs(hand[part][k] - auto[part][k]))),
             "max_abs_grad": float(np.max(np.abs(auto[part][k]))), "hand_00": float(hand[part][k][0, 0]),
             "autograd_00": float(auto[part][k][0, 0])}
            for part in ("t2", "total") for k in WEIGHTS]


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'part':6} {'weight':6} {'hand [0,0]':>14} {'autograd [0,0]':>15} {'max |diff|':>11}"]
    lines += [f"{r['part']:6} {r['weight']:6} {r['hand_00']:14.10f} {r['autograd_00']:15.10f} "
              f"{r['max_abs_error']:11.2e}" for r in rows]
    return "\n".join(lines)
