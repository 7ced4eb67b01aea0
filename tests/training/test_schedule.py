import math

import pytest
import torch

from fctlib.training.schedule import warmup_cosine, warmup_cosine_factor


def test_warmup_is_linear_then_cosine_to_zero():
    total, warm = 100, 10
    factors = [warmup_cosine_factor(s, total, warm) for s in range(total)]
    assert factors[:warm] == pytest.approx([(s + 1) / warm for s in range(warm)])
    assert factors[warm] == pytest.approx(1.0)
    mid = warm + (total - warm) // 2
    assert factors[mid] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(factors[warm:], factors[warm + 1:], strict=False))
    assert warmup_cosine_factor(total, total, warm) == pytest.approx(0.0)


def test_scheduler_drives_optimizer():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    sched = warmup_cosine(opt, total_steps=10, warmup_steps=2)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1.0) and seen[1] == pytest.approx(2.0)
    assert seen[-1] < 0.1


def test_bad_total():
    with pytest.raises(ValueError):
        warmup_cosine_factor(0, 0, 0)
