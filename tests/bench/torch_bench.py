#!/usr/bin/python3
"""PyTorch reference training benchmark for seqpar (run by hand, never by ctest).

Trains the model `seqpar train` trains, with the same data, sizes, loss and
optimiser, in PyTorch (CPU), and prints ONE line for scripts:

    torch model=book threads=1 ranks=1 tokens_per_s=12345.6 step_ms=12.3 steps=200 step_rate_median=12567.8

tokens_per_s is the tokens of the timed steps over their summed time, as
seqpar's tokens_per_s is the tokens over the training time: a step is forward
+ backward + global-norm clip + optimiser update (batch assembly excluded,
and the warmup steps, both of which seqpar's figure includes), tokens are the
target tokens that count in the loss (padding excluded) summed over ranks.
step_ms is the median step time and step_rate_median the median over steps
of (tokens / step time), for reference (it ran 2-12 % above tokens_per_s
on the book's model here: it drops the slow steps).
With --ranks R, a step's time is the slowest rank's. A stderr line says which
OpenBLAS kernel ran. Options: --model book|large|lm [--threads N] [--ranks R]
[--steps S] [--warmup W] [--seed K].

Models (seqpar's defaults otherwise; docs/DESIGN.md "Math conventions", "Data"):
  book   fra-eng, first 600 pairs, embed 32, hidden 32, 2 GRU layers,
         dropout 0.1, batch 64, num_steps 10, Adam 0.005, clip 1
  large  fra-eng, first 20 000 pairs, embed 256, hidden 512, otherwise as book
         but num_steps 20
  lm     the book's character LM on timemachine: one-hot input, 1 GRU layer of
         256, dense to the vocabulary, batch 32, num_steps 35, sequential
         sampling with the state carried and detached, SGD lr 1, clip 1;
         vocabulary = seqpar's 4 reserved tokens + the 27 characters
Translation uses the book's seq2seq from checkpoints/seqpar_torch.py and its
masked loss: summed over non-pad target tokens and divided by the global
batch's token count. Minibatches are random (a permutation per epoch); only
full global batches are used, so every step has the same shape.

--ranks R (> 1): torch.distributed (gloo, 127.0.0.1, a free port) with R
processes from torch.multiprocessing and DistributedDataParallel. Each rank
runs --threads threads (default 1) on rows [B*r/R, B*(r+1)/R) of the same
global batch B, as `mpirun -np R seqpar train`. Each rank scales its loss sum
by R / (global token count), computed from the whole global batch that every
rank knows, so DDP's gradient average is the global loss's gradient.

Environment, set by the caller (before Python starts):
  OPENBLAS_CORETYPE=SkylakeX  as for seqpar. torch here uses Debian's OpenBLAS
      (libblas.so.3 -> libopenblas.so.0) for sgemm, and on this VM OpenBLAS
      autodetects "Prescott" (no AVX kernels): a 64x768 @ 768x1536 sgemm
      took 6.5 ms, 1.6 ms with SkylakeX (2.2 ms Haswell).
  OMP_WAIT_POLICY=PASSIVE  for --threads > 1: PyTorch's OpenMP threads otherwise
      spin between parallel regions, against OpenBLAS's threads (book at 2
      threads: ~3 300 tokens/s without it, 9 000-14 000 with it).
OpenBLAS's thread count is set to --threads via openblas_set_num_threads
(torch.set_num_threads does not reach it; OpenBLAS would use every core).
$SEQPAR_DATA (default /work/shared/data) holds fra-eng/fra.txt and
timemachine.txt; a missing corpus exits with status 2.
"""

import argparse
import collections
import ctypes
import os
import random
import re
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "checkpoints"))
try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch import nn
    from torch.nn import functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from seqpar_torch import RESERVED, Seq2Seq, encode, masked_loss, normalize
except ImportError as exc:
    sys.exit("torch_bench.py: error: cannot import %s (%s); run it with Debian's /usr/bin/python3 "
             "(python3-torch, python3-h5py)" % (exc.name, exc))

MODELS = {
    "book": dict(task="translate", pairs=600, embed=32, hidden=32, layers=2, batch=64, T=10,
                 steps=200, warmup=5),
    "large": dict(task="translate", pairs=20000, embed=256, hidden=512, layers=2, batch=64, T=20,
                  steps=8, warmup=2),
    "lm": dict(task="lm", hidden=256, batch=32, T=35, steps=100, warmup=5),
}


# ---------------------------------------------------------------------- data

def make_vocab(counter, min_freq):
    """Reserved tokens (ids 0..3), then tokens of count >= min_freq by descending
    count, ties by first occurrence (Counter keeps insertion order; sort is stable)."""
    toks = [t for t, n in sorted(counter.items(), key=lambda kv: -kv[1])
            if n >= min_freq and t not in RESERVED]
    return {t: i for i, t in enumerate(list(RESERVED) + toks)}


def load_pairs(path, n, T):
    """The first n pairs of fra.txt, normalised as seqpar (the first two tab
    fields together), vocabularies with min_freq 2 → src, tgt (n, T), valid (n)."""
    src, tgt = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(src) == n:
                break
            if not line.strip():
                continue
            s, t = normalize("\t".join(line.rstrip("\n").split("\t")[:2])).split("\t")
            src.append(s)
            tgt.append(t)
    vocabs = [make_vocab(collections.Counter(w for s in side for w in s.split(" ") if w), 2)
              for side in (src, tgt)]
    s_ids = [encode(s, vocabs[0], T)[0] for s in src]
    t_enc = [encode(t, vocabs[1], T) for t in tgt]
    return dict(src=torch.tensor(s_ids), tgt=torch.tensor([e[0] for e in t_enc]),
                valid=torch.tensor([e[1] for e in t_enc]), vs=len(vocabs[0]), vt=len(vocabs[1]))


def load_timemachine(path):
    """d2l's load_corpus_time_machine with seqpar's vocabulary: per line
    re.sub('[^A-Za-z]+', ' ', line).strip().lower(), the characters of all lines
    concatenated, min_freq 0 after the reserved tokens."""
    with open(path, encoding="utf-8") as f:
        text = "".join(re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in f)
    vocab = make_vocab(collections.Counter(text), 0)
    return dict(ids=torch.tensor([vocab[c] for c in text]), vs=len(vocab))


def translate_batches(data, B, rank, world, seed):
    """Random minibatches (a permutation per epoch, full batches only) → this
    rank's (src, tgt, valid) rows and the global batch's token count."""
    n = data["src"].shape[0]
    lo, hi = B * rank // world, B * (rank + 1) // world
    for epoch in range(1 << 62):
        perm = list(range(n))
        random.Random(seed * 1000003 + epoch).shuffle(perm)
        for k in range(0, n - B + 1, B):
            idx = torch.tensor(perm[k:k + B])
            mine = idx[lo:hi]
            yield ((data["src"][mine], data["tgt"][mine], data["valid"][mine]),
                   int(data["valid"][idx].sum()))


def lm_batches(data, B, T, rank, world, seed):
    """d2l's sequential partition: an epoch's random offset in [0, T], B
    contiguous streams, consecutive T-token windows → this rank's (X, Y, new
    epoch?) rows and the global token count B*T."""
    ids = data["ids"]
    lo, hi = B * rank // world, B * (rank + 1) // world
    for epoch in range(1 << 62):
        off = random.Random(seed * 1000003 + epoch).randint(0, T)
        m = (ids.numel() - off - 1) // B * B
        X = ids[off:off + m].view(B, -1)[lo:hi]
        Y = ids[off + 1:off + 1 + m].view(B, -1)[lo:hi]
        for i in range(X.shape[1] // T):
            yield (X[:, i * T:(i + 1) * T], Y[:, i * T:(i + 1) * T], i == 0), B * T


class CharLM(nn.Module):
    """d2l's RNNModel: one-hot input → nn.GRU → dense on every output."""

    def __init__(self, vocab, hidden):
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.GRU(vocab, hidden)
        self.dense = nn.Linear(hidden, vocab)

    def forward(self, X, state):
        """X (B, T) ids, state (1, B, H) → logits (T, B, V), new state."""
        y, state = self.rnn(F.one_hot(X.t(), self.vocab).float(), state)
        return self.dense(y), state


# --------------------------------------------------------------------- train

def openblas():
    """(the loaded libopenblas or None, its kernel name)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib, lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None, "unknown (no libopenblas.so.0)"


def set_threads(n):
    """Once per process: a second set_num_interop_threads aborts torch 1.13."""
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    lib, _ = openblas()
    if lib is not None:
        lib.openblas_set_num_threads(n)


def worker(rank, world, args, cfg, data, port):
    """Trains on this rank's shard; rank 0 prints the result line."""
    if world > 1:
        set_threads(args.threads)  # a new process (main sets the threads of a world of one)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts them)
    B, T, lm = cfg["batch"], cfg["T"], cfg["task"] == "lm"
    if lm:
        net = CharLM(data["vs"], cfg["hidden"])
        batches = lm_batches(data, B, T, rank, world, args.seed)
    else:
        net = Seq2Seq(dict(cell="gru", layers=cfg["layers"], embed=cfg["embed"],
                           hidden=cfg["hidden"], dropout=0.1), data["vs"], data["vt"])
        batches = translate_batches(data, B, rank, world, args.seed)
    net.train()
    model = DDP(net) if world > 1 else net
    opt = (torch.optim.SGD(model.parameters(), lr=1.0) if lm
           else torch.optim.Adam(model.parameters(), lr=0.005))
    state = None
    times, tokens = [], []
    for step in range(args.warmup + args.steps):
        batch, ntok = next(batches)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if lm:
            X, Y, fresh = batch
            state = (torch.zeros(1, X.shape[0], cfg["hidden"]) if fresh or state is None
                     else state.detach())
            logits, state = model(X, state)
            loss = F.cross_entropy(logits.reshape(-1, data["vs"]), Y.t().reshape(-1),
                                   reduction="sum")
        else:
            loss, _ = masked_loss(model, *batch)
        (loss * (world / ntok)).backward()  # DDP averages over ranks: Σ grads / ntok
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(ntok)
    dt = torch.tensor(times, dtype=torch.float64)
    if world > 1:
        dist.all_reduce(dt, op=dist.ReduceOp.MAX)  # a step lasts until the slowest rank is done
        dist.destroy_process_group()
    if rank == 0:
        rates = [n / t for n, t in zip(tokens, dt.tolist())]
        print("torch model=%s threads=%d ranks=%d tokens_per_s=%.1f step_ms=%.1f steps=%d "
              "step_rate_median=%.1f"
              % (args.model, args.threads, world, sum(tokens) / sum(dt.tolist()),
                 1e3 * statistics.median(dt.tolist()), args.steps, statistics.median(rates)),
              flush=True)


def free_port():
    with socket.socket() as s:  # (another process may take it before gloo binds: rare)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    ap = argparse.ArgumentParser(prog="torch_bench.py", description="PyTorch reference "
                                 "training benchmark for seqpar (see the module docstring).")
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--threads", type=int, default=1, help="threads per rank (default 1)")
    ap.add_argument("--ranks", type=int, default=1, help="DDP processes (default 1)")
    ap.add_argument("--steps", type=int, help="timed steps (default: book 200, large 8, lm 100)")
    ap.add_argument("--warmup", type=int, help="untimed steps first (default 5; large 2)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = MODELS[args.model]
    lm = cfg["task"] == "lm"
    args.steps = cfg["steps"] if args.steps is None else args.steps
    args.warmup = cfg["warmup"] if args.warmup is None else args.warmup
    if args.threads < 1 or args.ranks < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--threads, --ranks and --steps must be >= 1, --warmup >= 0")
    if args.ranks > cfg["batch"]:
        ap.error("--ranks %d exceeds the global batch %d" % (args.ranks, cfg["batch"]))
    if args.ranks == 1:
        set_threads(args.threads)

    base = os.environ.get("SEQPAR_DATA") or "/work/shared/data"
    path = os.path.join(base, "timemachine.txt" if lm else "fra-eng/fra.txt")
    if not os.path.isfile(path):
        print("torch_bench.py: error: corpus %s not found (set SEQPAR_DATA to the directory "
              "holding fra-eng/fra.txt and timemachine.txt)" % path, file=sys.stderr)
        return 2
    try:
        data = load_timemachine(path) if lm else load_pairs(path, cfg["pairs"], cfg["T"])
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print("torch_bench.py: error: %s: %s" % (path, exc), file=sys.stderr)
        return 2
    n = data["ids"].numel() if lm else data["src"].shape[0]
    if n < cfg["batch"] * (cfg["T"] + 1 if lm else 1):
        print("torch_bench.py: error: %s: corpus too small for one batch" % path, file=sys.stderr)
        return 2
    print("torch_bench: torch %s, OpenBLAS core %s, OMP_WAIT_POLICY=%s, %s %d, vocab %s"
          % (torch.__version__, openblas()[1], os.environ.get("OMP_WAIT_POLICY", "unset"),
             "tokens" if lm else "pairs", n,
             data["vs"] if lm else "%d/%d" % (data["vs"], data["vt"])),
          file=sys.stderr, flush=True)
    if args.ranks == 1:
        worker(0, 1, args, cfg, data, None)
    else:
        mp.spawn(worker, args=(args.ranks, args, cfg, data, free_port()), nprocs=args.ranks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
