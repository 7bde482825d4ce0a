#!/usr/bin/python3
"""seqpar translation checkpoints in PyTorch.

A seqpar translation checkpoint (HDF5, docs/DESIGN.md "Checkpoint file") maps
1:1 onto the seq2seq model of *Dive into Deep Learning* (the seq2seq section)
built from ``torch.nn`` modules, which this module defines (DESIGN.md, "Math
conventions"):

* encoder: ``nn.Embedding(Vs, E)`` → ``nn.GRU/LSTM/RNN(E, H, L)``, time-major;
  a bidirectional encoder has ``H // 2`` units per direction and its final
  state per layer is ``[forward h(T-1) ; backward h(0)]`` (size H);
* decoder: input at every step ``[embedding(y_{t-1}) ; context]`` with
  context = the encoder's last-layer final h, fixed over all decoder steps
  (also when decoding), initial state = the encoder's final state (h, and c
  for an LSTM), ``nn.Linear(H, Vt)`` on every output;
* ``embed == 0`` means one-hot inputs (no embedding tensors); dropout p acts
  between stacked layers, as ``nn.GRU(dropout=p)``;
* ``"attention": "additive"`` in /config: the book's Bahdanau decoder
  (``Seq2SeqAttentionDecoder`` with ``AdditiveAttention``, the section after
  seq2seq): at step t the query is the decoder's top-layer state before the
  step (an LSTM's h), keys = values = the encoder's top-layer outputs,
  masked to the source's valid length (its non-``<pad>`` tokens), and the
  decoder's input is ``[context ; embedding(y_{t-1})]``; tensors
  ``decoder.attention.W_k/W_q/w_v.weight``. Absent or ``"none"``: the
  decoder above.

Command line (Debian's /usr/bin/python3 with python3-torch and python3-h5py)::

    /usr/bin/python3 checkpoints/seqpar_torch.py CKPT.h5 OUT.pt

writes ``{"state_dict", "config", "src_vocab", "tgt_vocab"}`` with
``torch.save``; a bad checkpoint gives one line on stderr and exit status 2.
A user loads OUT.pt with this module on ``sys.path``::

    import torch
    from seqpar_torch import Seq2Seq, encode, greedy, normalize

    ck = torch.load("OUT.pt")
    cfg, src_vocab, tgt_vocab = ck["config"], ck["src_vocab"], ck["tgt_vocab"]
    model = Seq2Seq(cfg, len(src_vocab), len(tgt_vocab))
    model.load_state_dict(ck["state_dict"])
    model.eval()

    index = {tok: i for i, tok in enumerate(src_vocab)}
    ids, _ = encode(normalize("I'm home."), index, cfg["steps"])
    out = greedy(model, torch.tensor([ids]), cfg["steps"])
    print(" ".join(tgt_vocab[i] for i in out[0]))

``load(CKPT.h5)`` does the same straight from the checkpoint;
``normalize``, ``encode`` and ``greedy`` reproduce ``seqpar translate``, and
``masked_loss`` the loss of ``seqpar score``.
"""

import argparse
import hashlib
import json
import sys

try:
    import h5py
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:
    if __name__ != "__main__":
        raise
    sys.exit("seqpar_torch.py: error: cannot import %s (%s): needs torch, h5py and numpy for %s "
             "(Debian: apt-get install python3-torch python3-h5py python3-numpy)"
             % (exc.name, exc, sys.executable))

PAD, BOS, EOS, UNK = 0, 1, 2, 3
RESERVED = ("<pad>", "<bos>", "<eos>", "<unk>")
CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
FORMAT = "seqpar-checkpoint"
FORMAT_VERSION = 2  # the newest checkpoint format this module reads (2: meta_sha256)


# --------------------------------------------------------------------- model

def _stack_dropout(cfg):
    """Dropout between stacked layers; torch warns about (and ignores) it for one layer."""
    return float(cfg.get("dropout", 0.0)) if cfg["layers"] > 1 else 0.0


def final_h(state):
    """The h part of an RNN/GRU state h or an LSTM state (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def join_directions(s):
    """(L*2, B, H/2) ordered [l0 fwd, l0 bwd, l1 fwd, ...] → (L, B, H) = [fwd ; bwd]."""
    L2, B, Hd = s.shape
    return s.reshape(L2 // 2, 2, B, Hd).permute(0, 2, 1, 3).reshape(L2 // 2, B, 2 * Hd)


class Encoder(nn.Module):
    """d2l's Seq2SeqEncoder, optionally bidirectional."""

    def __init__(self, cell, vocab, embed, hidden, layers, bidirectional, dropout=0.0):
        super().__init__()
        self.vocab = vocab
        self.bidirectional = bidirectional
        if embed > 0:
            self.embedding = nn.Embedding(vocab, embed)
        else:
            self.embedding = None
        size = hidden // 2 if bidirectional else hidden
        self.rnn = CELLS[cell](embed if embed > 0 else vocab, size, layers, dropout=dropout,
                               bidirectional=bidirectional)

    def forward(self, X):
        """X (B, T) source ids → outputs, final state (h or (h, c), each (L, B, H))."""
        X = X.t()  # (T, B): time-major, as d2l's permute
        if self.embedding is not None:
            x = self.embedding(X)
        else:
            x = F.one_hot(X, self.vocab).to(self.rnn.weight_ih_l0.dtype)
        outputs, state = self.rnn(x)
        if self.bidirectional:
            state = tuple(join_directions(s) for s in state) if isinstance(state, tuple) \
                else join_directions(state)
        return outputs, state


class Decoder(nn.Module):
    """d2l's Seq2SeqDecoder: [embedding(y_{t-1}) ; context] at every step."""

    def __init__(self, cell, vocab, embed, hidden, layers, dropout=0.0):
        super().__init__()
        self.vocab = vocab
        if embed > 0:
            self.embedding = nn.Embedding(vocab, embed)
        else:
            self.embedding = None
        self.rnn = CELLS[cell]((embed if embed > 0 else vocab) + hidden, hidden, layers,
                               dropout=dropout)
        self.dense = nn.Linear(hidden, vocab)

    def forward(self, X, state, context):
        """X (B, T) ids, state (L, B, H) (or an LSTM's (h, c)), context (B, H)
        → logits (T, B, V) and the new state."""
        X = X.t()
        if self.embedding is not None:
            x = self.embedding(X)
        else:
            x = F.one_hot(X, self.vocab).to(self.dense.weight.dtype)
        ctx = context.unsqueeze(0).expand(x.shape[0], -1, -1)
        outputs, state = self.rnn(torch.cat((x, ctx), dim=2), state)
        return self.dense(outputs), state


def masked_softmax(X, valid_lens):
    """d2l's masked_softmax: softmax over the last axis of X (B, Q, S), the
    positions at or past valid_lens (B) set to -1e6 first (no weight)."""
    shape = X.shape
    valid = torch.repeat_interleave(valid_lens, shape[1])
    X = X.reshape(-1, shape[-1])
    mask = torch.arange(shape[-1], device=X.device)[None, :] < valid[:, None]
    X = torch.where(mask, X, torch.full_like(X, -1e6))
    return F.softmax(X.reshape(shape), dim=-1)


class AdditiveAttention(nn.Module):
    """d2l's AdditiveAttention (num_hiddens = H, keys of size H, no biases)."""

    def __init__(self, hidden, dropout=0.0):
        super().__init__()
        self.W_k = nn.Linear(hidden, hidden, bias=False)
        self.W_q = nn.Linear(hidden, hidden, bias=False)
        self.w_v = nn.Linear(hidden, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights = None

    def forward(self, queries, keys, values, valid_lens):
        """queries (B, Q, H), keys = values (B, S, H), valid_lens (B) → (B, Q, H)."""
        queries, keys = self.W_q(queries), self.W_k(keys)
        features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))
        scores = self.w_v(features).squeeze(-1)
        weights = masked_softmax(scores, valid_lens)
        self.attention_weights = weights.detach()  # for the heat map (and deepcopy)
        return torch.bmm(self.dropout(weights), values)


class AttentionDecoder(nn.Module):
    """d2l's Seq2SeqAttentionDecoder: [context ; embedding(y_{t-1})] at step t,
    the context attending with the top layer's state before the step."""

    def __init__(self, cell, vocab, embed, hidden, layers, dropout=0.0, attn_dropout=0.0):
        super().__init__()
        self.attention = AdditiveAttention(hidden, attn_dropout)
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = CELLS[cell](embed + hidden, hidden, layers, dropout=dropout)
        self.dense = nn.Linear(hidden, vocab)

    def forward(self, X, state, enc_outputs, enc_valid):
        """X (B, T) ids, state (L, B, H) (or an LSTM's (h, c)), enc_outputs
        (B, S, H), enc_valid (B) → logits (T, B, V), the new state and the
        attention weights of every step (T, B, S)."""
        outputs, weights = [], []
        for x in self.embedding(X.t()):
            query = final_h(state)[-1].unsqueeze(1)
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid)
            x = torch.cat((context, x.unsqueeze(1)), dim=-1)
            out, state = self.rnn(x.permute(1, 0, 2), state)
            outputs.append(out)
            weights.append(self.attention.attention_weights.squeeze(1))
        return self.dense(torch.cat(outputs, dim=0)), state, torch.stack(weights)


def source_valid(src):
    """The sources' valid lengths as the book's: their non-<pad> ids (B)."""
    return (src != PAD).sum(dim=1)


class Seq2Seq(nn.Module):
    """The encoder–decoder for a seqpar /config (keys cell, layers, embed,
    hidden, and optionally bidirectional and dropout)."""

    def __init__(self, cfg, src_vocab, tgt_vocab):
        super().__init__()
        cell, layers, embed, hidden = cfg["cell"], cfg["layers"], cfg["embed"], cfg["hidden"]
        dropout = _stack_dropout(cfg)
        self.encoder = Encoder(cell, src_vocab, embed, hidden, layers,
                               bool(cfg.get("bidirectional", False)), dropout)
        self.attention = cfg.get("attention", "none") == "additive"
        if self.attention:
            self.decoder = AttentionDecoder(cell, tgt_vocab, embed, hidden, layers, dropout,
                                            float(cfg.get("dropout", 0.0)))
        else:
            self.decoder = Decoder(cell, tgt_vocab, embed, hidden, layers, dropout)

    def forward(self, src, dec_in):
        """Teacher-forced logits (T, B, Vt) for src and dec_in, both (B, T) ids."""
        outputs, state = self.encoder(src)
        if self.attention:
            logits, _, _ = self.decoder(dec_in, state, outputs.permute(1, 0, 2),
                                        source_valid(src))
            return logits
        logits, _ = self.decoder(dec_in, state, final_h(state)[-1])
        return logits


def masked_loss(model, src, tgt, valid):
    """Σ cross-entropy over t < valid[b], and the number of such positions.

    src, tgt (B, T) ids, valid (B) target valid lengths; <bos> is prepended
    to the target (teacher forcing)."""
    B, T = tgt.shape
    bos = torch.full((B, 1), BOS, dtype=tgt.dtype)
    dec_in = torch.cat((bos, tgt[:, :-1]), dim=1)
    logits = model(src, dec_in)  # (T, B, V)
    mask = (torch.arange(T).unsqueeze(1) < valid.unsqueeze(0))  # (T, B)
    ce = F.cross_entropy(logits.reshape(T * B, -1), tgt.t().reshape(-1), reduction="none")
    loss = (ce * mask.reshape(-1).to(ce.dtype)).sum()
    return loss, int(mask.sum())


@torch.no_grad()
def greedy(model, src, max_len, weights=None):
    """Greedy decoding as seqpar's model_greedy: src (B, T) ids → one id list
    per row. The decoder starts from <bos> and feeds back its argmax (the
    first index on ties); a row stops at <eos> (not included) or after
    max_len tokens. Without attention the context stays the encoder's
    last-layer final h. With attention and a list `weights`, weights[r]
    receives row r's attention weights, one list of T floats per output
    token (<eos> included when produced), as seqpar translate
    --attention-weights writes them."""
    outputs, state = model.encoder(src)
    context = final_h(state)[-1]
    keys, valid = outputs.permute(1, 0, 2), source_valid(src)
    B = src.shape[0]
    tok = torch.full((B, 1), BOS, dtype=torch.long)
    out = [[] for _ in range(B)]
    if weights is not None:
        weights[:] = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(max_len):
        if model.attention:
            logits, state, w = model.decoder(tok, state, keys, valid)
        else:
            logits, state = model.decoder(tok, state, context)
        y = logits[0].argmax(dim=1)
        for r, v in enumerate(y.tolist()):
            if done[r]:
                continue
            if weights is not None and model.attention:
                weights[r].append(w[0, r].tolist())
            if v == EOS:
                done[r] = True
            else:
                out[r].append(v)
        if all(done):
            break
        tok = y.unsqueeze(1)
    return out


# ---------------------------------------------------------------------- text

def _lower(c):
    """seqpar's lower_cp (data/text.c): Python's str.lower() on ASCII, Latin-1,
    Latin Extended-A, basic Greek and Cyrillic; other code points unchanged.
    U+0130 and capital sigma are the caller's."""
    if c < 0x80:
        return c + 32 if 0x41 <= c <= 0x5A else c
    if 0xC0 <= c <= 0xDE and c != 0xD7:
        return c + 32
    if 0x100 <= c <= 0x17F:
        if c <= 0x137:
            return c if c & 1 else c + 1
        if 0x139 <= c <= 0x148:
            return c + 1 if c & 1 else c
        if 0x14A <= c <= 0x177:
            return c if c & 1 else c + 1
        if c == 0x178:
            return 0xFF
        if 0x179 <= c <= 0x17E:
            return c + 1 if c & 1 else c
        return c
    if 0x391 <= c <= 0x3A9 and c != 0x3A2:
        return c + 32
    if c == 0x386:
        return 0x3AC
    if 0x388 <= c <= 0x38A:
        return c + 37
    if c == 0x38C:
        return 0x3CC
    if c in (0x38E, 0x38F):
        return c + 63
    if 0x410 <= c <= 0x42F:
        return c + 32
    if 0x400 <= c <= 0x40F:
        return c + 80
    return c


def _is_cased(c):
    """Letters with case in the scripts _lower handles (for Greek final sigma)."""
    if c < 0x80:
        return 0x61 <= (c | 32) <= 0x7A
    if 0xC0 <= c <= 0x24F:
        return c not in (0xD7, 0xF7)
    return (0x386 <= c <= 0x3FF and c != 0x387) or 0x400 <= c <= 0x4FF


def normalize(text):
    """The book's fra-eng preprocessing exactly as seqpar's data_normalize:
    U+202F and U+00A0 → space, lowercase, and a space inserted before , . ! ?
    when the character before (after that replacement) is not a space.
    Raises ValueError on a NUL or a lone surrogate (seqpar rejects NUL bytes
    and invalid UTF-8)."""
    out = []
    prev = None
    for i, ch in enumerate(text):
        c = ord(ch)
        if c == 0 or 0xD800 <= c <= 0xDFFF:
            raise ValueError("%s at character %d" % ("NUL" if c == 0 else "lone surrogate", i))
        if c in (0x202F, 0xA0):
            c = 0x20
        if prev is not None and prev != 0x20 and ch in ",.!?":
            out.append(" ")
        if c == 0x130:
            out.append("i\u0307")
        elif c == 0x3A3:
            # final sigma: after a cased letter and not before one
            before = i + 1 < len(text) and _is_cased(ord(text[i + 1]))
            out.append("\u03c2" if prev is not None and _is_cased(prev) and not before
                       else "\u03c3")
        else:
            out.append(chr(_lower(c)))
        prev = c
    return "".join(out)


def encode(sentence, tokens_index, T):
    """A normalised sentence → (T ids, valid length), as seqpar's
    data_encode_sentence: words split on ' ' (empty ones skipped), unknown
    words → <unk>, then <eos>, then <pad> up to T. A sentence of T words or
    more is cut to T and loses its <eos>, as in the book. The valid length is
    the number of non-<pad> ids (min(words + 1, T) unless a word is "<pad>").
    tokens_index maps token → id, e.g. {t: i for i, t in enumerate(vocab)}."""
    words = [w for w in sentence.split(" ") if w][:T]
    ids = [tokens_index.get(w, UNK) for w in words]
    if len(ids) < T:
        ids.append(EOS)
    ids += [PAD] * (T - len(ids))
    return ids, sum(1 for i in ids if i != PAD)


# ---------------------------------------------------------------- checkpoint

class CheckpointError(ValueError):
    """A file that is not a usable seqpar translation checkpoint; the message
    is one line that starts with the file's name."""


def _text(v):
    """An h5py string value (bytes, NUL-padded when fixed-length) → str."""
    return v.rstrip(b"\0").decode("utf-8") if isinstance(v, bytes) else str(v)


def meta_sha256(f):
    """The SHA-256 (hex) of an open checkpoint's training state, as seqpar
    computes it (checkpoints/ckpt_meta.c; DESIGN.md "Checkpoint file"): the
    root's attributes but meta_sha256, /config, then the attributes of
    /train and /optimizer, each attribute as "NAME|KIND|COUNT\\n" and its
    little-endian bytes (a string as "NAME|s|LEN\\n" and its bytes)."""
    h = hashlib.sha256()

    def attrs(obj, skip=""):
        for name in sorted(obj.attrs.keys(), key=str.encode):
            if name == skip:
                continue
            a = np.asarray(obj.attrs[name])
            if a.dtype.kind == "S":
                v = a.item().split(b"\0")[0]
                h.update(b"%s|s|%d\n%s" % (name.encode(), len(v), v))
            elif a.dtype.kind in "iuf":
                h.update(b"%s|%s%d|%d\n" % (name.encode(), a.dtype.kind.encode(),
                                              8 * a.dtype.itemsize, a.size))
                h.update(a.astype(a.dtype.newbyteorder("<")).tobytes())
            else:
                raise ValueError("attribute %s of a type no checkpoint holds" % name)

    h.update(b"/\n")
    attrs(f, "meta_sha256")
    c = f["config"][()]
    c = (c if isinstance(c, bytes) else c.encode("utf-8")).split(b"\0")[0]
    h.update(b"/config|s|%d\n%s" % (len(c), c))
    for g in ("/train", "/optimizer"):
        h.update(g.encode() + (b"\n" if g in f else b" absent\n"))
        if g in f:
            attrs(f[g])
    return h.hexdigest()


def _check_meta(f, path, version):
    """Format 2 on: meta_sha256 must match (format 1 has none)."""
    stored = f.attrs.get("meta_sha256")
    if stored is None and version < 2:
        return
    if stored is None:
        raise CheckpointError("%s: format_version %d but meta_sha256 is missing" % (path, version))
    try:
        ok = _text(stored) == meta_sha256(f)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError("%s: meta_sha256 cannot be checked (%s)" % (path, exc)) from None
    if not ok:
        raise CheckpointError("%s: meta_sha256 does not match /config and the attributes of /, "
                              "/train and /optimizer: damaged metadata" % path)


def _read_config(f, path):
    if not isinstance(f.get("config"), h5py.Dataset):
        raise CheckpointError("%s: missing /config" % path)
    try:
        cfg = json.loads(_text(f["config"][()]))
    except ValueError as exc:  # also UnicodeDecodeError
        raise CheckpointError("%s: /config is not JSON (%s)" % (path, exc)) from None
    if not isinstance(cfg, dict):
        raise CheckpointError("%s: /config is not a JSON object" % path)
    task = cfg.get("task", "translate")
    if task == "lm":
        raise CheckpointError("%s: a language-model checkpoint (task \"lm\"); only translation "
                              "checkpoints map onto the seq2seq model" % path)
    if task != "translate":
        raise CheckpointError("%s: task %r: only the translation model is supported"
                              % (path, task))
    for key, least in (("layers", 1), ("embed", 0), ("hidden", 1)):
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise CheckpointError("%s: /config \"%s\" is %r, expected a whole number >= %d"
                                  % (path, key, v, least))
    if cfg.get("cell") not in CELLS:
        raise CheckpointError("%s: /config \"cell\" is %r, expected one of %s"
                              % (path, cfg.get("cell"), ", ".join(sorted(CELLS))))
    dropout = cfg.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) \
            or not 0.0 <= dropout < 1.0:
        raise CheckpointError("%s: /config \"dropout\" is %r, expected a number in [0, 1)"
                              % (path, dropout))
    attention = cfg.get("attention", "none")
    if attention not in ("none", "additive"):
        raise CheckpointError("%s: /config \"attention\" is %r, expected none or additive"
                              % (path, attention))
    if attention == "additive" and cfg["embed"] < 1:
        raise CheckpointError("%s: attention needs embeddings (embed >= 1)" % path)
    if cfg.get("bidirectional", False) and cfg["hidden"] % 2:
        raise CheckpointError("%s: a bidirectional encoder needs an even hidden size" % path)
    return cfg


def _read_vocab(f, path, which, cfg):
    key = "vocab/" + which
    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "SOU":
        raise CheckpointError("%s: missing or malformed /%s (one string per token id)"
                              % (path, key))
    try:
        tokens = [_text(v) for v in ds[()]]
    except UnicodeDecodeError as exc:
        raise CheckpointError("%s: /%s is not UTF-8 (%s)" % (path, key, exc)) from None
    if tuple(tokens[:len(RESERVED)]) != RESERVED:
        raise CheckpointError("%s: /%s does not start with %s" % (path, key, " ".join(RESERVED)))
    if len(set(tokens)) != len(tokens):
        raise CheckpointError("%s: /%s holds a token twice" % (path, key))
    want = cfg.get(which + "_vocab")
    if want is not None and want != len(tokens):
        raise CheckpointError("%s: /config says %s_vocab=%s but /%s holds %d tokens"
                              % (path, which, want, key, len(tokens)))
    return tokens


def _read_state(f, path):
    if not isinstance(f.get("model"), h5py.Group):
        raise CheckpointError("%s: missing group /model" % path)
    state = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            state[name.replace("/", ".")] = torch.from_numpy(np.asarray(obj[()], dtype=np.float32))

    f["model"].visititems(visit)
    return state


def load(path):
    """A seqpar translation checkpoint → (model, cfg, src_tokens, tgt_tokens).

    model is a float32 Seq2Seq in eval mode holding the checkpoint's weights
    (load_state_dict(strict=True): every name and shape must map); cfg is the
    /config dict as saved; the token lists are /vocab/src and /vocab/tgt
    (index = id). Raises CheckpointError (a ValueError) for anything that is
    not a readable seqpar translation checkpoint."""
    try:
        with h5py.File(path, "r") as f:
            fmt = _text(f.attrs.get("format", b""))
            version = f.attrs.get("format_version")
            if fmt != FORMAT or version is None:
                raise CheckpointError("%s: not a seqpar checkpoint (no format attribute \"%s\")"
                                      % (path, FORMAT))
            if not 1 <= int(version) <= FORMAT_VERSION:
                raise CheckpointError("%s: format_version %d is not supported (this reads 1..%d)"
                                      % (path, int(version), FORMAT_VERSION))
            _check_meta(f, path, int(version))
            cfg = _read_config(f, path)
            src = _read_vocab(f, path, "src", cfg)
            tgt = _read_vocab(f, path, "tgt", cfg)
            state = _read_state(f, path)
    except OSError as exc:  # not HDF5, missing, unreadable, or a Fletcher-32 checksum error
        raise CheckpointError("%s: cannot read as HDF5 (%s)" % (path, exc)) from None
    model = Seq2Seq(cfg, len(src), len(tgt))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # a name or shape that does not map
        raise CheckpointError("%s: /model does not map onto torch.nn: %s"
                              % (path, " ".join(str(exc).split()))) from None
    return model.eval(), cfg, src, tgt


# ---------------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(
        prog="seqpar_torch.py",
        description="Turn a seqpar translation checkpoint into a PyTorch state_dict of the "
                    "book's seq2seq model (see the module docstring for loading it).")
    ap.add_argument("checkpoint", help="seqpar translation checkpoint (HDF5)")
    ap.add_argument("out", help="output file for torch.save (overwritten)")
    args = ap.parse_args(argv)
    try:
        model, cfg, src, tgt = load(args.checkpoint)
    except CheckpointError as exc:
        print("seqpar_torch.py: error: %s" % exc, file=sys.stderr)
        return 2
    try:
        torch.save({"state_dict": model.state_dict(), "config": cfg,
                    "src_vocab": src, "tgt_vocab": tgt}, args.out)
    except (OSError, RuntimeError) as exc:
        print("seqpar_torch.py: error: %s: cannot write (%s)"
              % (args.out, " ".join(str(exc).split())), file=sys.stderr)
        return 2
    print("seqpar_torch.py: %s -> %s: %s L=%d E=%d H=%d%s%s, vocab %d -> %d, %d parameters"
          % (args.checkpoint, args.out, cfg["cell"], cfg["layers"], cfg["embed"], cfg["hidden"],
             " bidirectional" if cfg.get("bidirectional") else "",
             " attention" if model.attention else "", len(src), len(tgt),
             sum(p.numel() for p in model.parameters())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
