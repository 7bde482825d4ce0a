#!/usr/bin/python3
"""PyTorch reference for seqpar's training recipes (tests/test_recipes.c).

  recipes_ref.py xent IN OUT
      IN:  int32 N, int32 V, float32 eps, float32 logits (N, V), int32 targets (N)
           (target -1: ignored)
      OUT: float64 loss (torch.nn.CrossEntropyLoss(reduction="sum",
           ignore_index=-1, label_smoothing=eps)), float64 d loss / d logits (N, V);
           computed in float64 from the float32 logits
  recipes_ref.py adamw IN OUT
      IN:  int32 n, int32 steps, float32 weight_decay, float32 lr (steps),
           float32 p0 (n), float32 grads (steps, n)
      OUT: float32 p (n), exp_avg (n), exp_avg_sq (n) after `steps` updates of
           torch.optim.AdamW([p], lr, betas=(0.9, 0.999), eps=1e-8,
           weight_decay), the group's lr set to lr[k] before update k (a
           schedule), in float32 as the C optimizer

Raw little-endian binaries, no header beyond the counts. Exit status: 0,
2 usage, 3 a missing module (Debian: python3-torch, python3-numpy), 4 bad input.
"""
import sys

try:
    import numpy as np
    import torch
except ImportError as exc:  # pragma: no cover - environment check
    print("recipes_ref.py: error: cannot import %s: needs python3-torch and python3-numpy"
          % exc.name, file=sys.stderr)
    sys.exit(3)


def die(code, msg):
    print("recipes_ref.py: error: " + msg, file=sys.stderr)
    sys.exit(code)


def xent(raw):
    n, v = np.frombuffer(raw[:8], dtype="<i4")
    eps = float(np.frombuffer(raw[8:12], dtype="<f4")[0])
    need = 12 + 4 * n * v + 4 * n
    if n < 1 or v < 1 or len(raw) != need:
        die(4, "xent input: N %d, V %d: expected %d bytes, got %d" % (n, v, need, len(raw)))
    z = np.frombuffer(raw[12:12 + 4 * n * v], dtype="<f4").reshape(n, v)
    y = np.frombuffer(raw[12 + 4 * n * v:], dtype="<i4")
    logits = torch.tensor(z.astype(np.float64), requires_grad=True)
    loss = torch.nn.CrossEntropyLoss(reduction="sum", ignore_index=-1, label_smoothing=eps)(
        logits, torch.tensor(y.astype(np.int64)))
    loss.backward()
    return (np.float64(loss.item()).tobytes()
            + logits.grad.numpy().astype("<f8").tobytes())


def adamw(raw):
    n, steps = np.frombuffer(raw[:8], dtype="<i4")
    wd = float(np.frombuffer(raw[8:12], dtype="<f4")[0])
    need = 12 + 4 * steps + 4 * n + 4 * steps * n
    if n < 1 or steps < 1 or len(raw) != need:
        die(4, "adamw input: n %d, steps %d: expected %d bytes, got %d"
            % (n, steps, need, len(raw)))
    off = 12
    lr = np.frombuffer(raw[off:off + 4 * steps], dtype="<f4")
    off += 4 * steps
    p0 = np.frombuffer(raw[off:off + 4 * n], dtype="<f4")
    off += 4 * n
    g = np.frombuffer(raw[off:], dtype="<f4").reshape(steps, n)
    p = torch.nn.Parameter(torch.tensor(p0.copy()))
    opt = torch.optim.AdamW([p], lr=float(lr[0]), betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=wd, foreach=False)
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = float(lr[k])
        p.grad = torch.tensor(g[k].copy())
        opt.step()
    st = opt.state[p]
    return b"".join(t.detach().numpy().astype("<f4").tobytes()
                    for t in (p, st["exp_avg"], st["exp_avg_sq"]))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("xent", "adamw"):
        die(2, "usage: recipes_ref.py xent|adamw IN OUT")
    torch.set_num_threads(1)
    with open(sys.argv[2], "rb") as f:
        raw = f.read()
    if len(raw) < 12:
        die(4, "%s: too short" % sys.argv[2])
    out = xent(raw) if sys.argv[1] == "xent" else adamw(raw)
    with open(sys.argv[3], "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
