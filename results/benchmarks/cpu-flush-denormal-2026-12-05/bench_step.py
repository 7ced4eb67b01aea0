"""Time h's training step (forward, backward, Adam step) from a checkpoint, with and without
flushing denormal floats to zero, against the same h freshly initialised."""
import sys
import time

import torch

from fctlib.models.transformation import Transformation

torch.set_num_threads(1)
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
state, opt_state = ckpt["model"], ckpt["optimizer"]
old_dim = state["old_branch.0.weight"].shape[1]
side_dim = state["side_branch.0.weight"].shape[1] if "side_branch.0.weight" in state else 0
new_dim = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2][-1].shape[0]


def layer_widths(prefix: str) -> list[int]:
    """Output widths of the linear layers under `prefix`, in order."""
    return [v.shape[0] for k, v in state.items()
            if k.startswith(prefix) and k.endswith("weight") and v.dim() == 2]


widths, mixer = layer_widths("old_branch"), layer_widths("mixer")[:-1]
print("dims", old_dim, side_dim, new_dim, widths, mixer)


def timed(model, opt, flush, steps=30, batch=256):
    torch.set_flush_denormal(flush)
    g = torch.Generator().manual_seed(0)
    old = torch.randn(batch, old_dim, generator=g) * 0.09
    side = torch.randn(batch, side_dim, generator=g) if side_dim else None
    target = torch.randn(batch, new_dim, generator=g) * 0.09
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        out = model(old, side) if side_dim else model(old, None)
        loss = ((out - target) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


for label, load in (("checkpoint", True), ("fresh", False)):
    for flush in (False, True):
        torch.manual_seed(0)
        model = Transformation(old_dim, side_dim, new_dim, widths, mixer)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=3.05e-5)
        if load:
            model.load_state_dict(state)
            opt.load_state_dict(opt_state)
        print(f"{label} flush_denormal={flush}: {timed(model, opt, flush):.0f} items/s", flush=True)
