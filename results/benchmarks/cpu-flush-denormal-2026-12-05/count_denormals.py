"""Count denormal float32 values (nonzero, below 1.2e-38) in each checkpoint of a seed folder: model
and, where the checkpoint keeps it, optimiser state."""
import sys, glob, torch
TINY = torch.finfo(torch.float32).tiny
def count(obj):
    n = t = 0
    if isinstance(obj, torch.Tensor):
        if obj.dtype == torch.float32:
            a = obj.abs()
            return int(((a > 0) & (a < TINY)).sum()), obj.numel()
        return 0, 0
    if isinstance(obj, dict):
        it = obj.values()
    elif isinstance(obj, (list, tuple)):
        it = obj
    else:
        return 0, 0
    for v in it:
        a, b = count(v); n += a; t += b
    return n, t
for path in sorted(glob.glob(sys.argv[1] + "/*/model.pt")):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    parts = {k: count(v) for k, v in ck.items()} if isinstance(ck, dict) else {"all": count(ck)}
    print(path.split("/")[-2], {k: v for k, v in parts.items() if v[1]})
