#!/usr/bin/python3
"""PyTorch reference of the full-data benchmark (issue 25 item 5; run by
tests/bench/fra_full.sh, or by hand; never by ctest).

Trains, on the split of tests/bench/fra_full_split.py, the model `seqpar
train --attention additive|none` trains, and writes a table of test BLEU
(greedy and beam 4, scored by `seqpar bleu`, so both systems are scored by
the same code) against training time, a row at every evaluation:

    run  time_s  step  epoch  train_loss  bleu_greedy  bleu_beam4  utc

Model (docs/DESIGN.md "Math conventions"; the book's seq2seq sections):
  encoder   nn.Embedding(Vs, E) → nn.GRU(E, H, L, dropout=p), time-major, all
            num_steps positions read (padding included), as seqpar and the book
  decoder   --attention none: checkpoints/seqpar_torch.py's Decoder (input
            [embedding ; context], context = encoder's last-layer final h);
            --attention additive: the book's Seq2SeqAttentionDecoder with
            AdditiveAttention: query = the decoder's last-layer h before the
            step (the encoder's final state at t = 0), keys = values = the
            encoder's last-layer outputs, scores = w_v · tanh(W_q q + W_k k)
            with no biases, softmax masked to the source's valid length (its
            non-<pad> tokens, <eos> included; −1e6 fill, so padding weighs
            exactly 0), dropout p on the weights in training, GRU input
            concat(context, embedding) in that order, nn.Linear(H, Vt) out.
            Names: decoder.attention.W_q.weight (H, H), .W_k.weight (H, H),
            .w_v.weight (1, H). `--check` tests this on a 2-pair batch.
  init      as seqpar's model_init_params: embeddings N(0, 1), every other
            weight Xavier-uniform (d2l's init_seq2seq), biases torch's default
  loss      cross-entropy summed over the non-pad target tokens (<eos>
            included), divided by the batch's token count; <bos> prepended
            (teacher forcing); global-norm clipping (--clip); Adam
            (betas 0.9, 0.999, eps 1e-8); the decoder runs to the batch's
            longest target only (the same loss and gradient)
  lr        update u = 1, 2, …: lr·u/W for u ≤ W (W = --warmup); after it
            inverse-sqrt: max(lr_min, lr·√(max(W,1)/u)), or constant: lr —
            the formulas of seqpar's --lr-schedule (DESIGN.md, "Training
            recipes")
Data: the split's train.txt normalised and tokenised as seqpar
(seqpar_torch.normalize), vocabularies with min_freq 2 from the training
pairs only, ordered as seqpar orders them (reserved <pad> <bos> <eos> <unk>,
then by descending count, ties by first occurrence), sentences + <eos> cut or
padded to --steps (a sentence of --steps words or more loses its <eos>, as
the book); --num-examples N keeps the first N training pairs.
Batches: --batch-tokens N (0: batches of --batch random pairs, the last one
of an epoch short, as seqpar's random sampler) follows seqpar's token
batches (DESIGN.md "Token batches"): the epoch's permutation of the pairs is
cut into windows of 32 × --batch pairs, each window sorted by target length
(tokens up to and including <eos>) longest first, stably, and cut greedily
(a batch takes the next pair while its target tokens stay within N and its
pairs within --batch; at least one), then the epoch's batches are shuffled.
The rule is seqpar's; the random draws are Python's random.Random keyed by
(seed, epoch), not seqpar's generator, so the batches are alike in
distribution, not the same batches.
Evaluation (every --eval-every seconds of training time, and at the end):
greedy and beam-search decoding of test.src as `seqpar translate` decodes
(max length --steps; the beam as seqpar's model_beam: k best one-token
extensions of the live hypotheses by summed log probability, one ending in
<eos> set aside as finished and the sentence's beam shrunk by one, the
answer the candidate with the best score / L^alpha, L counting <eos>;
hypotheses live at the maximum length compete with L = that length), the
hypotheses written as `seqpar translate` writes them (target tokens joined
by spaces), then `seqpar bleu --ref test.ref --hyp FILE`.
Time: time_s counts the process's whole wall time (data loading and model
building included, summed over resumed processes) except evaluations,
as fra_full.sh counts seqpar's training processes whole.
Resume: the run directory's ckpt.pt (model, optimizer, RNG state, position,
clock) is written at every evaluation and when SIGTERM or SIGINT stops the
run at the next step boundary (exit status 75, as seqpar); a second signal
ends it at once. Rerunning the same command continues from it; an
evaluation interrupted before its row was written is done first.
Threads: --threads (default 2: one process with 2 threads was PyTorch's
best on this 2-core machine, tests/bench/README.md), OpenBLAS's count set to
it as well; the caller sets OMP_WAIT_POLICY=PASSIVE and
OPENBLAS_CORETYPE=SkylakeX (tests/bench/torch_bench.py says why).
`--parity CKPT --data DIR [--num-examples N]` loads a seqpar checkpoint
(with or without attention) into this script's model, compares seqpar's
vocabularies with the ones built here and decodes DIR/test.src greedily and
with the beam, against `seqpar translate`'s output line by line (exit 0 when
all agree).
Exit status: 0 done (budget reached), 75 stopped by a signal (resumable),
2 bad input, 1 other failure.
"""

import argparse
import collections
import ctypes
import math
import os
import random
import re
import signal
import subprocess
import sys
import time

T_START = time.time()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "checkpoints"))
try:
    import torch
    from torch import nn
    from torch.nn import functional as F
    import h5py
    import seqpar_torch
    from seqpar_torch import BOS, EOS, PAD, RESERVED, Decoder, Encoder, encode, normalize
except ImportError as exc:
    sys.exit("fra_full_torch.py: error: cannot import %s (%s); run it with Debian's "
             "/usr/bin/python3 (python3-torch, python3-h5py)" % (exc.name, exc))

EXIT_STOPPED = 75
HEADER = "run\ttime_s\tstep\tepoch\ttrain_loss\tbleu_greedy\tbleu_beam4\tutc\n"


def die(msg, code=2):
    print("fra_full_torch.py: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------------- data

def make_vocab(counter, min_freq):
    """seqpar's order: reserved ids 0..3, then count >= min_freq by descending
    count, ties by first occurrence (Counter keeps insertion order; sorted is stable)."""
    toks = [t for t, n in sorted(counter.items(), key=lambda kv: -kv[1])
            if n >= min_freq and t not in RESERVED]
    return list(RESERVED) + toks


def load_train(path, limit, T, min_freq):
    src, tgt = [], []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if limit and len(src) == limit:
                break
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip(" \t"):
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                die("%s:%d: no tab between source and target" % (path, ln))
            s, t = normalize("\t".join(fields[:2])).split("\t")
            src.append(s)
            tgt.append(t)
    if not src:
        die("%s: no sentence pairs" % path)
    vocabs = [make_vocab(collections.Counter(w for s in side for w in s.split(" ") if w),
                         min_freq) for side in (src, tgt)]
    index = [{t: i for i, t in enumerate(v)} for v in vocabs]
    s_enc = [encode(s, index[0], T)[0] for s in src]
    t_enc = [encode(t, index[1], T) for t in tgt]
    return dict(src=torch.tensor(s_enc), tgt=torch.tensor([e[0] for e in t_enc]),
                valid=torch.tensor([e[1] for e in t_enc]), src_vocab=vocabs[0],
                tgt_vocab=vocabs[1], src_index=index[0])


def load_test(path, index, T):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return torch.tensor([encode(normalize(s), index, T)[0] for s in lines])


def epoch_batches(n, epoch, seed, batch, batch_tokens, tgt_len):
    """The epoch's batches (lists of pair indices); see the module docstring."""
    perm = list(range(n))
    random.Random(seed * 1000003 + epoch).shuffle(perm)
    if batch_tokens <= 0:
        return [perm[k:k + batch] for k in range(0, n, batch)]
    out = []
    win = 32 * batch
    for w0 in range(0, n, win):
        window = sorted(perm[w0:w0 + win], key=lambda i: -tgt_len[i])  # stable
        cur, toks = [], 0
        for i in window:
            if cur and (toks + tgt_len[i] > batch_tokens or len(cur) == batch):
                out.append(cur)
                cur, toks = [], 0
            cur.append(i)
            toks += tgt_len[i]
        if cur:
            out.append(cur)
    random.Random(seed * 1000003 + epoch + 0x5EED).shuffle(out)
    return out


# --------------------------------------------------------------------- model

class AdditiveAttention(nn.Module):
    """d2l's AdditiveAttention with key, query and hidden sizes H; W_k is
    applied by the caller once per batch (the keys do not change over steps)."""

    def __init__(self, hidden, dropout):
        super().__init__()
        self.W_k = nn.Linear(hidden, hidden, bias=False)
        self.W_q = nn.Linear(hidden, hidden, bias=False)
        self.w_v = nn.Linear(hidden, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, keys_proj, values, mask):
        """query (B, H), keys_proj = W_k keys (B, S, H), values (B, S, H), mask
        (B, S) true on valid positions → context (B, H), weights (B, S)."""
        features = torch.tanh(self.W_q(query).unsqueeze(1) + keys_proj)
        scores = self.w_v(features).squeeze(-1).masked_fill(~mask, -1e6)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(self.dropout(weights).unsqueeze(1), values).squeeze(1), weights


class AttentionDecoder(nn.Module):
    """d2l's Seq2SeqAttentionDecoder (attention created before the embedding,
    as the book and seqpar order the tensors)."""

    def __init__(self, vocab, embed, hidden, layers, dropout):
        super().__init__()
        self.attention = AdditiveAttention(hidden, dropout)
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.GRU(hidden + embed, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.dense = nn.Linear(hidden, vocab)

    def init_state(self, enc_outputs, state, src):
        """Keys/values (B, S, H), their projection, the mask, the first state."""
        values = enc_outputs.permute(1, 0, 2)
        return dict(values=values, keys_proj=self.attention.W_k(values),
                    mask=src != PAD, state=state)

    def forward(self, X, mem, keep_weights=False):
        """X (B, T') ids → logits (T', B, V); mem (from init_state) is advanced."""
        emb = self.embedding(X.t())  # (T', B, E)
        outs, weights = [], []
        state = mem["state"]
        for x in emb:
            ctx, w = self.attention(state[-1], mem["keys_proj"], mem["values"], mem["mask"])
            out, state = self.rnn(torch.cat((ctx, x), dim=-1).unsqueeze(0), state)
            outs.append(out)
            if keep_weights:
                weights.append(w)
        mem["state"] = state
        if keep_weights:
            mem["weights"] = torch.stack(weights)  # (T', B, S)
        return self.dense(torch.cat(outs, 0))


class Model(nn.Module):
    """The encoder–decoder, with or without attention, and a step interface
    shared by training and decoding."""

    def __init__(self, attention, vs, vt, embed, hidden, layers, dropout):
        super().__init__()
        self.attn = attention == "additive"
        self.encoder = Encoder("gru", vs, embed, hidden, layers, False,
                               dropout if layers > 1 else 0.0)
        if self.attn:
            self.decoder = AttentionDecoder(vt, embed, hidden, layers, dropout)
        else:
            self.decoder = Decoder("gru", vt, embed, hidden, layers,
                                   dropout if layers > 1 else 0.0)
        for name, p in self.named_parameters():
            if "weight" in name and "embedding" not in name:
                nn.init.xavier_uniform_(p)

    def start(self, src):
        enc_outputs, state = self.encoder(src)
        if self.attn:
            return self.decoder.init_state(enc_outputs, state, src)
        return dict(state=state, context=state[-1])

    def step(self, X, mem):
        """X (B, T') ids → logits (T', B, V), mem advanced."""
        if self.attn:
            return self.decoder(X, mem)
        logits, mem["state"] = self.decoder(X, mem["state"], mem["context"])
        return logits

    @staticmethod
    def select(mem, rows):
        """mem restricted/reordered to rows (a LongTensor)."""
        out = {}
        for k, v in mem.items():
            if k in ("state",):
                out[k] = v[:, rows]
            elif k != "weights":
                out[k] = v[rows]
        return out


def loss_sum(model, src, tgt, valid):
    """Σ cross-entropy over t < valid[b] (decoder run to the longest target)."""
    T = int(valid.max())
    tgt = tgt[:, :T]
    B = tgt.shape[0]
    dec_in = torch.cat((torch.full((B, 1), BOS, dtype=tgt.dtype), tgt[:, :-1]), dim=1)
    logits = model.step(dec_in, model.start(src))  # (T, B, V)
    mask = torch.arange(T).unsqueeze(1) < valid.unsqueeze(0)
    ce = F.cross_entropy(logits.reshape(T * B, -1), tgt.t().reshape(-1), reduction="none")
    return (ce * mask.reshape(-1).to(ce.dtype)).sum(), int(mask.sum())


# ------------------------------------------------------------------ decoding

@torch.no_grad()
def greedy(model, src, max_len):
    mem = model.start(src)
    B = src.shape[0]
    tok = torch.full((B, 1), BOS, dtype=torch.long)
    out = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(max_len):
        y = model.step(tok, mem)[0].argmax(dim=1)
        for r, v in enumerate(y.tolist()):
            if done[r]:
                continue
            if v == EOS:
                done[r] = True
            else:
                out[r].append(v)
        if all(done):
            break
        tok = y.unsqueeze(1)
    return out


@torch.no_grad()
def beam(model, src, k, alpha, max_len):
    """seqpar's model_beam (model/models.c), batched over sentences."""
    B = src.shape[0]
    R = B * k
    mem = Model.select(model.start(src), torch.arange(R) // k)
    tok = torch.full((R, 1), BOS, dtype=torch.long)
    score = [0.0] * R
    live = [r % k == 0 for r in range(R)]  # identical beams: only the first starts
    hist = [[] for _ in range(R)]
    nlive = [k] * B
    best = [-math.inf] * B
    best_tok = [[] for _ in range(B)]

    def consider(b, sc, norm_len, toks):
        norm = sc / norm_len ** alpha
        if norm > best[b]:
            best[b] = norm
            best_tok[b] = list(toks)

    for s in range(max_len):
        if not any(nlive):
            break
        z = model.step(tok, mem)[0]  # (R, V)
        V = z.shape[1]
        # a sentence keeps at most k extensions, so each row's k best tokens
        # hold them all; their scores in double, as seqpar's beam_advance
        # (log probability z - logsumexp(z) of the row)
        zk, vk = z.topk(k, dim=1)  # (R, k)
        # seqpar's row_logsumexp: max + log Σ exp(z - max), the sum in double
        # (the exponentials here in float: a (rows, vocabulary) double tensor
        # made beam search 2-3 times slower)
        mx = z.max(dim=1, keepdim=True).values
        lse = mx.double() + torch.log(torch.exp(z - mx).sum(dim=1, keepdim=True,
                                                             dtype=torch.float64))
        cand = torch.tensor(score, dtype=torch.float64).unsqueeze(1) + (zk.double() - lse)
        cand[~torch.tensor(live)] = -math.inf
        topv, pos = cand.view(B, k * k).topk(k, dim=1)  # over the sentence's rows' candidates
        row = pos // k
        topi = (row * V + vk.view(B, k * k).gather(1, pos)).tolist()
        topv = topv.tolist()
        parent = list(range(R))
        n_score, n_hist, n_live, n_tok = list(score), list(hist), [False] * R, tok.squeeze(1).tolist()
        for b in range(B):
            if nlive[b] == 0:
                continue
            j = 0
            for q in range(nlive[b]):
                sc = topv[b][q]
                if sc == -math.inf:
                    break
                r = b * k + topi[b][q] // V
                v = topi[b][q] % V
                if v == EOS:
                    consider(b, sc, s + 1, hist[r])
                    nlive[b] -= 1
                    continue
                rr = b * k + j
                j += 1
                parent[rr] = r
                n_score[rr] = sc
                n_hist[rr] = hist[r] + [v]
                n_live[rr] = True
                n_tok[rr] = v
            if j == 0:
                nlive[b] = 0
        score, hist, live = n_score, n_hist, n_live
        tok = torch.tensor(n_tok).unsqueeze(1)
        mem = Model.select(mem, torch.tensor(parent))
    for b in range(B):
        if nlive[b] == 0:
            continue
        for j in range(k):
            r = b * k + j
            if live[r]:
                consider(b, score[r], max_len, hist[r])
    return best_tok


def decode_all(model, src, beam_k, alpha, max_len, chunk):
    model.eval()
    out = []
    chunk = max(1, chunk // beam_k)  # rows decoded together: chunk sentences x beams
    for c0 in range(0, src.shape[0], chunk):
        part = src[c0:c0 + chunk]
        out += greedy(model, part, max_len) if beam_k == 1 else beam(model, part, beam_k, alpha,
                                                                      max_len)
    model.train()
    return out


def bleu(seqpar, ref, hyp):
    r = subprocess.run([seqpar, "bleu", "--ref", ref, "--hyp", hyp], capture_output=True,
                       text=True)
    m = re.match(r"BLEU = ([0-9.]+)", r.stdout)
    if r.returncode != 0 or not m:
        die("%s bleu --ref %s --hyp %s failed: %s" % (seqpar, ref, hyp,
                                                       (r.stderr or r.stdout).strip()), 1)
    return float(m.group(1))


# ---------------------------------------------------------------------- check

def need(ok, what):
    """A failed check: one line, exit 1 (not assert: python3 -O would drop it)."""
    if not ok:
        die("check failed: %s" % (what,), 1)


def check():
    """The attention decoder against the book's equations on a 2-pair batch."""
    torch.manual_seed(3)
    H, E, V = 8, 6, 11
    m = Model("additive", V, V, E, H, 2, 0.0).eval()
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    for name, want in (("decoder.attention.W_q.weight", (H, H)),
                       ("decoder.attention.W_k.weight", (H, H)),
                       ("decoder.attention.w_v.weight", (1, H)),
                       ("decoder.rnn.weight_ih_l0", (3 * H, H + E))):
        need(shapes.get(name) == want, (name, shapes.get(name), want))
    need(not any("attention" in n and "bias" in n for n in shapes), "attention has a bias")
    src = torch.tensor([[4, 5, 6, EOS, PAD, PAD], [7, 8, 9, 10, 4, EOS]])
    valid = [4, 6]
    mem = m.start(src)
    enc_out, enc_state = m.encoder(src)
    dec_in = torch.tensor([[BOS, 5], [BOS, 7]])
    m.decoder(dec_in, mem, keep_weights=True)
    w = mem["weights"]  # (2 steps, 2 rows, T)
    a = m.decoder.attention
    # step 0 by hand: query = the encoder's last-layer final h
    q = enc_state[-1]
    k = enc_out.permute(1, 0, 2)
    feat = torch.tanh((q @ a.W_q.weight.t()).unsqueeze(1) + k @ a.W_k.weight.t())  # (B, S, H)
    scores = (feat @ a.w_v.weight.t()).squeeze(-1)  # (B, S)
    for b in range(2):
        ref = torch.softmax(scores[b, :valid[b]], dim=0)
        need(torch.allclose(w[0, b, :valid[b]], ref, atol=1e-6), (w[0, b], ref))
    for t in range(2):
        for b in range(2):
            s = float(w[t, b, :valid[b]].sum())
            need(abs(s - 1.0) < 1e-6, (t, b, s))
            need(bool((w[t, b, valid[b]:] == 0).all()), (t, b, w[t, b]))
    # the GRU's input is concat(context, embedding): rerun step 0 by hand
    ctx0 = torch.bmm(w[0].unsqueeze(1), k).squeeze(1)
    x0 = torch.cat((ctx0, m.decoder.embedding(dec_in[:, 0])), dim=-1)
    out0, _ = m.decoder.rnn(x0.unsqueeze(0), enc_state)
    mem2 = m.start(src)
    logits = m.decoder(dec_in[:, :1], mem2)
    need(torch.allclose(logits[0], m.decoder.dense(out0[0]), atol=1e-6),
         "the GRU input is not concat(context, embedding)")
    print("fra_full_torch: check ok: attention weights of steps 0 and 1 sum to 1 over the valid "
          "source positions (4 and 6 of 6) and are 0 on padding; step 0's weights = "
          "softmax(w_v tanh(W_q q + W_k k)) with q the encoder's last-layer final h; GRU input "
          "= concat(context, embedding); W_q, W_k (%d, %d), w_v (1, %d), no biases" % (H, H, H))


def parity(a):
    """A seqpar checkpoint in this script's model: its vocabularies against the
    ones this script builds from --data (with --num-examples, --steps), and
    greedy and beam decoding of test.src against `seqpar translate`'s."""
    try:
        with h5py.File(a.parity, "r") as f:
            cfg = seqpar_torch._read_config(f, a.parity)
            src_v = seqpar_torch._read_vocab(f, a.parity, "src", cfg)
            tgt_v = seqpar_torch._read_vocab(f, a.parity, "tgt", cfg)
            state = seqpar_torch._read_state(f, a.parity)
    except (OSError, seqpar_torch.CheckpointError) as exc:
        die("%s: %s" % (a.parity, exc))
    data = load_train(os.path.join(a.data, "train.txt"), a.num_examples, cfg["steps"],
                      a.min_freq)
    same_vocab = data["src_vocab"] == src_v and data["tgt_vocab"] == tgt_v
    print("fra_full_torch: parity: vocabularies %s (%d -> %d tokens)"
          % ("identical" if same_vocab else "DIFFERENT", len(src_v), len(tgt_v)), flush=True)
    attn = "additive" if cfg.get("attention", "none") in ("additive", 1) else "none"
    m = Model(attn, len(src_v), len(tgt_v), cfg["embed"], cfg["hidden"], cfg["layers"], 0.0)
    m.load_state_dict(state, strict=True)
    src = load_test(os.path.join(a.data, "test.src"), {t: i for i, t in enumerate(src_v)},
                    cfg["steps"])
    ok = same_vocab
    with open(os.path.join(a.data, "test.src"), "rb") as f:
        text = f.read()
    for k in (1, a.beam):
        r = subprocess.run([a.seqpar, "translate", "--checkpoint", a.parity, "--beam", str(k),
                            "--alpha", str(a.alpha)], input=text, capture_output=True)
        if r.returncode != 0:
            die("seqpar translate: %s" % r.stderr.decode(errors="replace").strip(), 1)
        theirs = r.stdout.decode("utf-8").splitlines()
        mine = [" ".join(tgt_v[i] for i in h)
                for h in decode_all(m, src, k, a.alpha, cfg["steps"], a.eval_chunk)]
        same = sum(x == y for x, y in zip(mine, theirs))
        print("fra_full_torch: parity: beam %d: %d of %d translations identical to seqpar "
              "translate's" % (k, same, len(theirs)), flush=True)
        ok = ok and same == len(theirs) == len(mine)
    return 0 if ok else 1


# --------------------------------------------------------------------- train

def set_threads(n):
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_set_num_threads(n)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def lr_at(u, a):
    if u <= a.warmup and a.warmup > 0:
        return a.lr * u / a.warmup
    if a.lr_schedule == "inverse-sqrt":
        return max(a.lr_min, a.lr * math.sqrt(max(a.warmup, 1) / u))
    return a.lr


STOP = {"n": 0}


def on_signal(signum, frame):
    STOP["n"] += 1
    if STOP["n"] > 1:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def main(argv):
    ap = argparse.ArgumentParser(prog="fra_full_torch.py", description="PyTorch reference of "
                                 "the full-data benchmark (see the module docstring).")
    ap.add_argument("--check", action="store_true", help="test the attention decoder and exit")
    ap.add_argument("--parity", metavar="CKPT", help="compare vocabularies and decoding with a "
                    "seqpar checkpoint on --data's test.src and exit (0: identical)")
    ap.add_argument("--data", help="the split's directory (train.txt, test.src, test.ref)")
    ap.add_argument("--out", help="run directory (ckpt.pt, table.tsv, hypotheses)")
    ap.add_argument("--run", default="torch", help="the run's name in the table")
    ap.add_argument("--attention", choices=("none", "additive"), default="additive")
    ap.add_argument("--num-examples", type=int, default=0, help="first N training pairs (0 all)")
    ap.add_argument("--steps", type=int, default=20, help="num_steps (default 20)")
    ap.add_argument("--min-freq", type=int, default=2)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=512, help="pairs a batch at most")
    ap.add_argument("--batch-tokens", type=int, default=4096, help="target tokens a batch (0: "
                    "batches of --batch pairs)")
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--lr-schedule", choices=("constant", "inverse-sqrt"), default="inverse-sqrt")
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--lr-min", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=3600, help="training seconds (default 3600)")
    ap.add_argument("--eval-every", type=float, default=600, help="training seconds between "
                    "evaluations (default 600)")
    ap.add_argument("--alpha", type=float, default=0.75)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--eval-chunk", type=int, default=500, help="test sentences decoded together")
    ap.add_argument("--seqpar", default=os.path.join(ROOT, "build", "trainer", "seqpar"))
    ap.add_argument("--log-every", type=int, default=50)
    a = ap.parse_args(argv)
    if a.check:
        check()
        return 0
    if a.parity and a.data:
        set_threads(a.threads)
        return parity(a)
    if not a.data or not a.out:
        ap.error("--data DIR and --out DIR are required (or --check, or --parity CKPT --data DIR)")
    for name in ("train.txt", "test.src", "test.ref"):
        if not os.path.isfile(os.path.join(a.data, name)):
            die("%s: no %s (write the split with tests/bench/fra_full_split.py)" % (a.data, name))
    if not os.access(a.seqpar, os.X_OK):
        die("%s: not an executable (--seqpar: the seqpar binary, for seqpar bleu)" % a.seqpar)
    if min(a.steps, a.embed, a.hidden, a.layers, a.batch, a.threads) < 1 or a.budget <= 0 \
            or a.eval_every <= 0 or a.beam < 1 or not 0 <= a.dropout < 1:
        die("sizes, --threads, --budget, --eval-every and --beam must be positive, "
            "--dropout in [0, 1)")
    os.makedirs(a.out, exist_ok=True)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    core = set_threads(a.threads)

    data = load_train(os.path.join(a.data, "train.txt"), a.num_examples, a.steps, a.min_freq)
    test_src = load_test(os.path.join(a.data, "test.src"), data["src_index"], a.steps)
    test_ref = os.path.join(a.data, "test.ref")
    n = data["src"].shape[0]
    tgt_len = data["valid"].tolist()
    torch.manual_seed(a.seed)
    model = Model(a.attention, len(data["src_vocab"]), len(data["tgt_vocab"]), a.embed, a.hidden,
                  a.layers, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    ckpt = os.path.join(a.out, "ckpt.pt")
    table = os.path.join(a.out, "table.tsv")
    pos = dict(step=0, epoch=1, batch_in_epoch=0, clock=0.0, next_eval=a.eval_every,
               at_eval=False, loss_sum=0.0, tokens=0)
    resumed = os.path.exists(ckpt)
    if resumed:
        st = torch.load(ckpt)
        if st["args"] != {k: v for k, v in vars(a).items() if k in st["args"]}:
            diff = [k for k in st["args"] if st["args"][k] != getattr(a, k)]
            die("%s: written with other options (%s): use another --out or the same options"
                % (ckpt, ", ".join("--%s" % k.replace("_", "-") for k in diff)))
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["rng"])
        pos = st["pos"]
    base_clock = pos["clock"]
    print("fra_full_torch: torch %s, %d threads, OpenBLAS core %s, OMP_WAIT_POLICY=%s; %d pairs, "
          "vocab %d -> %d, %d test; attention %s, %d parameters; %s at step %d (%.0f s)"
          % (torch.__version__, a.threads, core, os.environ.get("OMP_WAIT_POLICY", "unset"), n,
             len(data["src_vocab"]), len(data["tgt_vocab"]), test_src.shape[0], a.attention,
             sum(p.numel() for p in model.parameters()),
             "resumed" if resumed else "fresh", pos["step"], pos["clock"]), flush=True)
    seg_start = T_START  # the process's start: loading counts as training time

    def clock():
        return base_clock + (time.time() - seg_start)

    def save():
        pos["clock"] = clock()
        tmp = ckpt + ".tmp"
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(),
                        rng=torch.get_rng_state(), pos=pos,
                        args={k: v for k, v in vars(a).items()
                              if k not in ("budget", "eval_every", "seqpar", "log_every",
                                           "eval_chunk", "out", "data")}), tmp)
        os.replace(tmp, ckpt)

    def have_row(step):
        if not os.path.exists(table):
            return False
        with open(table) as f:
            return any(line.split("\t")[2:3] == [str(step)] for line in f
                       if line.startswith(a.run + "\t"))

    def evaluate():
        nonlocal base_clock, seg_start
        pos["at_eval"] = True
        save()  # (a kill during the evaluation redoes it from this)
        base_clock, seg_start = pos["clock"], time.time()
        t0 = time.time()
        scores = []
        for k in (1, a.beam):
            hyp = decode_all(model, test_src, k, a.alpha, a.steps, a.eval_chunk)
            path = os.path.join(a.out, "hyp-%08d-beam%d.txt" % (pos["step"], k))
            with open(path, "w", encoding="utf-8") as f:
                for h in hyp:
                    f.write(" ".join(data["tgt_vocab"][i] for i in h) + "\n")
            scores.append(bleu(a.seqpar, test_ref, path))
        loss = pos["loss_sum"] / pos["tokens"] if pos["tokens"] else float("nan")
        new = not os.path.exists(table)
        with open(table, "a") as f:
            if new:
                f.write(HEADER)
            f.write("%s\t%.1f\t%d\t%d\t%.4f\t%.2f\t%.2f\t%s\n"
                    % (a.run, pos["clock"], pos["step"], pos["epoch"], loss, scores[0], scores[1],
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        print("fra_full_torch: step %d time %.0f s: test BLEU greedy %.2f beam %d %.2f "
              "(evaluation %.0f s)" % (pos["step"], pos["clock"], scores[0], a.beam, scores[1],
                                       time.time() - t0), flush=True)
        pos["loss_sum"], pos["tokens"], pos["at_eval"] = 0.0, 0, False
        base_clock, seg_start = pos["clock"], time.time()
        save()

    if pos["at_eval"] and not have_row(pos["step"]):
        evaluate()
    model.train()
    batches = epoch_batches(n, pos["epoch"], a.seed, a.batch, a.batch_tokens, tgt_len)
    win_loss, win_tok, win_t0 = 0.0, 0, time.time()
    while True:
        if STOP["n"]:
            save()
            print("fra_full_torch: stopped by a signal at step %d (%.0f s); rerun to resume"
                  % (pos["step"], pos["clock"]), flush=True)
            return EXIT_STOPPED
        if clock() >= min(pos["next_eval"], a.budget):
            if pos["step"] > 0 and not have_row(pos["step"]):
                evaluate()
            if clock() >= a.budget:
                save()
                print("done step=%d time_s=%.0f tokens=%d tokens_per_s=%.0f (training tokens "
                      "over training time, loading included)"
                      % (pos["step"], pos["clock"], pos.get("tokens_total", 0),
                         pos.get("tokens_total", 0) / max(pos["clock"], 1e-9)), flush=True)
                return 0
            while pos["next_eval"] <= clock():
                pos["next_eval"] += a.eval_every
        if pos["batch_in_epoch"] >= len(batches):
            pos["epoch"] += 1
            pos["batch_in_epoch"] = 0
            batches = epoch_batches(n, pos["epoch"], a.seed, a.batch, a.batch_tokens, tgt_len)
        idx = torch.tensor(batches[pos["batch_in_epoch"]])
        u = pos["step"] + 1
        for g in opt.param_groups:
            g["lr"] = lr_at(u, a)
        opt.zero_grad(set_to_none=True)
        loss, ntok = loss_sum(model, data["src"][idx], data["tgt"][idx], data["valid"][idx])
        (loss / ntok).backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        pos["step"] = u
        pos["batch_in_epoch"] += 1
        pos["loss_sum"] += float(loss)
        pos["tokens"] += ntok
        pos["tokens_total"] = pos.get("tokens_total", 0) + ntok
        win_loss += float(loss)
        win_tok += ntok
        if u % a.log_every == 0:
            dt = time.time() - win_t0
            print("step %d epoch %d loss %.4f tok/s %.0f lr %.4g time %.0f"
                  % (u, pos["epoch"], win_loss / win_tok, win_tok / dt, lr_at(u, a), clock()),
                  flush=True)
            win_loss, win_tok, win_t0 = 0.0, 0, time.time()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
