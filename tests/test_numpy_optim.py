"""NumPy optimizers, clipping and schedules vs torch.optim on identical gradients."""

import inspect

import numpy as np
import pytest
import torch

from rnnlab.numpy import optim

SHAPES = {"w": (4, 3), "b": (3,), "e": (5, 2)}


def run_both(np_cls, torch_cls, kwargs, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = np_cls(params, **kwargs)
    topt = torch_cls(list(tparams.values()), **kwargs)
    for _ in range(steps):
        grads = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        opt.step(grads)
        topt.step()
    return params, {k: t.detach().numpy() for k, t in tparams.items()}


CONFIGS = [
    (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-2}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}),
    (optim.Adagrad, torch.optim.Adagrad, {}),
    (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1,
                                          "initial_accumulator_value": 0.5}),
    (optim.RMSprop, torch.optim.RMSprop, {}),
    (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.003, "momentum": 0.9, "weight_decay": 1e-2}),
    (optim.RMSprop, torch.optim.RMSprop, {"alpha": 0.9, "centered": True, "momentum": 0.5}),
    (optim.Adam, torch.optim.Adam, {}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
]


@pytest.mark.parametrize("np_cls,torch_cls,kwargs", CONFIGS,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CONFIGS)])
def test_optimizer_matches_torch(np_cls, torch_cls, kwargs):
    ours, ref = run_both(np_cls, torch_cls, kwargs)
    for k in ours:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-10, atol=1e-10)
    # and the parameters actually moved
    start = run_both(np_cls, torch_cls, kwargs, steps=0)[0]
    assert all(np.abs(ours[k] - start[k]).max() > 1e-4 for k in ours)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam"])
def test_defaults_equal_torch(name):
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    shared = [k for k in ours if k != "params"]
    assert shared, name
    for k in shared:
        assert ours[k].default == theirs[k].default, (name, k)


def test_missing_gradient_is_skipped_and_float32_kept():
    params = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float32)}
    opt = optim.Adam(params, lr=0.1)
    opt.step({"a": np.ones(3), "b": None})
    assert params["a"].dtype == np.float32 and np.all(params["a"] < 1)
    np.testing.assert_array_equal(params["b"], 1.0)


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, float("inf")),
                                                (2.0, 1.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(1)
    grads = {k: 3.0 * rng.standard_normal(s) for k, s in SHAPES.items()}
    ts = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g)
    total_t = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type)
    total = optim.clip_grad_norm(grads, max_norm, norm_type)
    assert abs(total - total_t.item()) <= 1e-12 * total
    for t, g in zip(ts, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=0)


def test_the_one_schedule_drives_numpy_optimizers():
    """rnnlab.optim.Schedule is the only learning-rate schedule; a NumPy optimizer takes its lr."""
    from rnnlab.config import TrainConfig
    from rnnlab.optim import Schedule

    opt = optim.SGD({"w": np.zeros(1)}, lr=1.0)
    schedule = Schedule(TrainConfig(schedule="zaremba", lr=1.0, lr_decay=2.0, decay_after=4), total_steps=100)
    lrs = []
    for epoch in range(7):
        opt.lr = schedule.lr(epoch, step=0)
        lrs.append(opt.lr)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    assert not hasattr(optim, "make_scheduler")


def test_factories_and_state_dict():
    params = {"w": np.ones(3)}
    opt = optim.make_optimizer("adam", params, lr=0.1)
    opt.step({"w": np.ones(3)})
    sd = opt.state_dict()
    params2 = {"w": params["w"].copy()}
    opt2 = optim.make_optimizer("ADAM", params2)
    opt2.load_state_dict(sd)
    opt.step({"w": np.ones(3)})
    opt2.step({"w": np.ones(3)})
    np.testing.assert_array_equal(params["w"], params2["w"])
    assert opt2.lr == 0.1
    with pytest.raises(ValueError):
        optim.make_optimizer("lion", params)
