/* model/: the math of seqpar.
 *
 * Letters used in shapes throughout model/:
 *   T  time steps (num_steps)        B  batch rows held by this rank
 *   E  embedding size                H  hidden size (per direction: Hd)
 *   G  gates per cell (RNN 1, GRU 3, LSTM 4)
 *   I  per-step input size of a layer   C  per-sequence (context) input size
 *   V  vocabulary size               L  stacked layers
 *   N  rows of a row-wise op (usually T*B)
 *
 * Activations are time-major, (T, B, ·), row-major. Parameters follow
 * PyTorch's layouts and names (DESIGN.md), so a checkpoint maps 1:1 onto a
 * torch.nn state_dict.
 *
 * Every backward function *adds* into parameter gradients and into input
 * gradients (callers zero them), as PyTorch's autograd accumulates.
 *
 * Status: functions returning int give MODEL_OK or a negative MODEL_E*; a
 * message for the caller is in err[errlen] where the signature has one. */
#ifndef SEQPAR_MODEL_H
#define SEQPAR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

enum { MODEL_OK = 0, MODEL_EINVAL = -1, MODEL_ENOMEM = -2 };

/* ========================================================= parameter table */

#define PARAM_NAME_MAX  96
#define PARAM_MAX_DIMS  2
#define PARAM_GRAD_TAIL 16 /* spare floats after the gradients (see param_table_alloc) */

typedef struct param_tensor {
    char name[PARAM_NAME_MAX]; /* PyTorch state_dict key, e.g. "encoder.rnn.weight_ih_l0" */
    int ndim;
    int shape[PARAM_MAX_DIMS];
    size_t offset; /* in floats, into data / grad; a multiple of 16 (64-byte aligned) */
    size_t size;   /* elements */
} param_tensor;

/* One contiguous float32 buffer for all parameters, a second of the same
 * layout for gradients. Init, save/load, allreduce, optimizer, clipping and
 * gradient checks all walk this table. */
typedef struct param_table {
    param_tensor *t;
    int n, cap;
    size_t total; /* floats in data (including alignment padding, which stays 0) */
    float *data;
    float *grad; /* total + PARAM_GRAD_TAIL floats */
} param_table;

/* Registers a tensor (before param_table_alloc); returns its index or -1. */
int param_table_add(param_table *pt, const char *name, int ndim, int d0, int d1);
int param_table_alloc(param_table *pt);                        /* zeroed, 64-byte aligned buffers */
int param_table_find(const param_table *pt, const char *name); /* index or -1 */
void param_table_free(param_table *pt);
static inline float *param_data(const param_table *pt, int i)
{
    return pt->data + pt->t[i].offset;
}
static inline float *param_grad(const param_table *pt, int i)
{
    return pt->grad + pt->t[i].offset;
}
void param_zero_grad(param_table *pt);
/* Allocates a float buffer with the table's layout (e.g. Adam moments), zeroed. */
float *param_buffer_alloc(const param_table *pt);
void param_buffer_free(float *p);

/* =================================================================== layers */

/* out (N, E) = W[ids] ; W (V, E). */
void embedding_forward(float *out, const float *W, const int32_t *ids, int N, int E);
/* dW[ids[n]] += dout[n]. */
void embedding_backward(float *dW, const float *dout, const int32_t *ids, int N, int E);

/* out (N, O) = in (N, I) · W^T + b ; W (O, I) as torch.nn.Linear, b may be NULL.
 * ws (ws_n floats, or NULL) is the layer's rgemm workspace (dense_ws_floats):
 * with it, products run on rgemm where it suits, else on OpenBLAS. */
void dense_forward(float *out, const float *in, const float *W, const float *b, int N, int I, int O,
                   float *ws, size_t ws_n);
/* dW (O, I) += dout^T in ; db (O) += Σ_n dout ; din (N, I) += dout · W when din is
 * not NULL (skipped when nobody needs it). rg: the layer has an rgemm
 * workspace (the backward reads its operands in place). */
void dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                    const float *W, int N, int I, int O, int rg);
/* The workspace (W^T packed) a dense layer of up to Nmax rows uses for
 * rgemm: 0 (OpenBLAS only) unless rgemm is available and the layer is small
 * (Nmax·I·O ≤ 2^24 multiply-adds, where rgemm beats OpenBLAS's per-call
 * packing). */
size_t dense_ws_floats(int Nmax, int I, int O);

/* Fused masked softmax cross-entropy. logits (N, V) are replaced in place by
 * d(Σ loss)/d(logits) = softmax − onehot for counted rows, 0 for the others.
 * A row counts when target >= 0 (target < 0 = masked out). Returns the summed
 * cross-entropy (double) and the number of counted rows in *count. */
double xent_forward_backward(float *logits, const int32_t *targets, int N, int V, long *count);
/* log Σ_v e^{z_v} of one row (V >= 1), max-subtracted, summed in double. */
double row_logsumexp(const float *z, int V);
/* The same with label smoothing eps in (0, 1), as PyTorch's
 * CrossEntropyLoss(label_smoothing = eps): the target distribution is
 * (1 − eps)·onehot(y) + eps/V, so
 *   loss_n = logsumexp(z_n) − (1 − eps)·z_n[y_n] − (eps/V)·Σ_v z_n[v]
 *   d loss_n / d z_n = softmax(z_n) − (1 − eps)·onehot(y_n) − eps/V.
 * (eps = 0 is xent_forward_backward's math; callers use that one then.) */
double xent_smooth_forward_backward(float *logits, const int32_t *targets, int N, int V, float eps,
                                    long *count);
/* Forward only (logits kept): Σ cross-entropy over counted rows. */
double xent_forward(const float *logits, const int32_t *targets, int N, int V, long *count);

/* ====================================================== recurrent layers */

typedef enum { CELL_RNN = 0, CELL_GRU = 1, CELL_LSTM = 2 } cell_kind;
int cell_gates(cell_kind c); /* 1, 3, 4 */
const char *cell_name(cell_kind c);
int cell_parse(const char *s, cell_kind *out); /* "rnn" | "gru" | "lstm" */

/* One direction of one recurrent layer, as torch.nn.{RNN,GRU,LSTM}.
 *
 * Input to the layer: a per-step input x (T, B, I), read with row stride ldx
 * (or, when `onehot`, token ids (T, B) standing for one-hot rows of size I = V,
 * done as a column lookup, never a dense product), and optionally a
 * per-sequence context c (B, C) that is the same at every step (the decoder's
 * context). The weight W_ih (G·H, I + C) covers both: columns [0, I) act on x,
 * [I, I + C) on c, so its context product is done once per sequence, not per
 * step.
 *
 *   RNN:  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
 *   GRU:  r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(… z …),
 *         n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h
 *   LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh) slices,
 *         c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c')
 *
 * reverse = 1 processes t = T−1 … 0 (the `_reverse` direction). Every
 * activation is stored in original time order; `prev(t)` is the state before
 * step t in processing order. */
typedef struct rnn_dir {
    cell_kind cell;
    int I, C, H;
    int reverse;
    int onehot;
    int Tmax, Bmax;
    /* parameters (pointers into a param_table) */
    float *W_ih, *W_hh, *b_ih, *b_hh;     /* (GH, I+C), (GH, H), (GH), (GH) */
    float *dW_ih, *dW_hh, *db_ih, *db_hh; /* same shapes */
    /* saved activations, sized for Tmax, Bmax */
    float *xw;    /* (T, B, GH)  W_ih x + b_ih (+ context part)            */
    float *hw;    /* (T, B, GH)  W_hh prev(t) + b_hh                        */
    float *gates; /* (T, B, GH)  post-activation gates                      */
    float *hs;    /* (T+1, B, H) states; forward: [h0, h(0) … h(T−1)];
                                 reverse: [h(0) … h(T−1), h0] so that prev(t)
                                 for every t is block t + (reverse ? 1 : 0)  */
    float *cs;    /* (T+1, B, H) LSTM cells, same layout; NULL otherwise     */
    float *ctxw;  /* (B, GH)     W_ic c                                      */
    float *wp;    /* W_hh laid out for the steps' products (T > 1): packed
                     for rgemm, or W_hh^T (H, GH) without it                 */
    /* backward workspace */
    float *dxw;            /* (T, B, GH)  d/d(input pre-activation)                   */
    float *dhw;            /* (T, B, GH)  d/d(recurrent pre-activation) (GRU only; for
                                          RNN/LSTM it equals dxw)                     */
    float *dh, *dc, *dtmp; /* (B, H) each */
    float *bp;             /* a small direction's W_ih^T packed for rgemm (bp_n floats), or NULL */
    size_t bp_n;
    float *mem; /* the one allocation behind the workspace */
    /* packed mode (rnn_stack_set_packed): bs[t] rows at step t, else B */
    const int *bs;
    int *n;      /* (Tmax + 1) rows of each step in the last forward */
    size_t *off; /* (Tmax + 1) first packed row of each step; off[T] = all rows */
    /* shared input rows (rnn_dir_share_inputs): rows with one id have one x */
    int vocab;        /* ids are in [0, vocab); 0: off */
    int shared;       /* the last forward shared its input rows */
    int32_t *slot_of; /* (vocab) −1 between calls */
    int32_t *slot;    /* (Tmax·Bmax) each row's distinct id, as an index into uniq */
    int32_t *uniq;    /* (Tmax·Bmax) the last forward's distinct ids, first seen first */
    int U;            /* how many */
    float *xu;        /* (Tmax·Bmax, I) their input rows */
    /* rows of the (n, GH, H) recurrent products the last forward and
     * backward skipped: from a zero initial state (h0 NULL) the first step's
     * (it adds exact zeros to b_hh), and the backward's last when dh0 is not
     * wanted. (dW_hh keeps the zero rows: leaving them out would move its
     * sums' blocking, and the results' last bits, for 1/T of one product.) */
    int skipped;
    /* step by step (rnn_dir_begin): the backward's current gradient of the
     * state before the step last backed through, the other buffer, and the
     * rows it holds */
    float *dcur, *dnext;
    int live;
    int sT, sthreads; /* rnn_dir_begin's T and BLAS threads */
    int srg_hh;       /* its steps' recurrent products run on rgemm, W_hh laid out in wp */
    int srg_ih;       /* ... and their input products, W_ih^T packed in bp */
} rnn_dir;

int rnn_dir_init(rnn_dir *d, cell_kind cell, int I, int C, int H, int reverse, int onehot, int Tmax,
                 int Bmax);
void rnn_dir_free(rnn_dir *d);
/* Binds parameter pointers: weights at W_ih … and gradients at dW_ih …. */
void rnn_dir_bind(rnn_dir *d, float *W_ih, float *W_hh, float *b_ih, float *b_hh, float *dW_ih,
                  float *dW_hh, float *db_ih, float *db_hh);

/* Declares that x rows are a function of the row's id (an embedding lookup,
 * ids in [0, vocab)): a forward with ids then projects each distinct id
 * once (W_ih x for U distinct ids instead of every row), and the backward
 * sums the rows' gradients per id before its products. The backward's dx is
 * then (U, I): the gradient of each distinct id's input row, ids in
 * d->uniq. Not with onehot input. */
int rnn_dir_share_inputs(rnn_dir *d, int vocab);

/* x (T, B, ·) with row stride ldx; ids (T, B): the rows' ids, read with onehot
 * input (x unused) or shared inputs (else may be NULL); ctx (B, C) or NULL;
 * h0 (B, H) or NULL for zeros; c0 likewise (LSTM). Writes the output of every
 * step to y (T, B, ·) at column offset 0 with row stride ldy (may be NULL), and
 * the final state to hT / cT when not NULL. */
void rnn_dir_forward(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                     const float *ctx, const float *h0, const float *c0, float *y, int ldy,
                     float *hT, float *cT);

/* Backward through the last forward call (which decided whether inputs were
 * shared: then dx is (U, I), see rnn_dir_share_inputs). dy (T, B, ·) with stride ldy, or NULL;
 * dhT, dcT (B, H) gradients of the final state or NULL. carry (T, B) or NULL:
 * the gradient passed from step t to the state before it is multiplied by
 * carry[t·B + b] (0 detaches: truncated BPTT; 1/π or 0: randomized
 * truncation). Adds into: parameter gradients; dx (T, B, ·) stride lddx when
 * not NULL; dctx (B, C) when not NULL; dh0, dc0 (B, H) when not NULL. */
void rnn_dir_backward(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                      const float *ctx, const float *dy, int ldy, const float *dhT,
                      const float *dcT, const float *carry, float *dx, int lddx, float *dctx,
                      float *dh0, float *dc0);

/* Step by step (the attention decoder, whose input at step t depends on the
 * state before it): rnn_dir_begin lays out T steps (packed with d->bs, as
 * rnn_dir_forward) and sets the initial state (h0/c0 NULL: zeros);
 * rnn_dir_step runs step t (t = 0 … T−1 in order) on x, step t's rows
 * (n[t], I) at stride ldx, saving what rnn_dir_forward saves. Forward
 * direction, no context, no one-hot input (MODEL_EINVAL otherwise).
 * rnn_dir_state(d, t, B): the state after step t (t = −1: the initial
 * state), rows in step t's order. The backward: rnn_dir_backward_begin,
 * then rnn_dir_backward_step for t = T−1 … 0 (dy: the gradient of step t's
 * output, (n[t], H) at stride ldy, or NULL; dx (n[t], I) at stride lddx
 * added to when not NULL), rnn_dir_dstate: the gradient of the state
 * before the step last backed through (B rows, the first n[t] meaningful;
 * callers may add to them), and rnn_dir_backward_end, which adds the
 * parameter gradients over all steps' inputs x (N, I) and d h0, d c0 (B,
 * H) when not NULL. No allocation. */
int rnn_dir_begin(rnn_dir *d, int T, int B, const float *h0, const float *c0);
void rnn_dir_step(rnn_dir *d, int t, int B, const float *x, int ldx);
const float *rnn_dir_state(const rnn_dir *d, int t, int B);
void rnn_dir_backward_begin(rnn_dir *d, int B);
void rnn_dir_backward_step(rnn_dir *d, int t, int B, const float *dy, int ldy, float *dx, int lddx);
float *rnn_dir_dstate(const rnn_dir *d);
void rnn_dir_backward_end(rnn_dir *d, int T, int B, const float *x, int ldx, float *dh0,
                          float *dc0);

/* seqpar's own sgemm (rgemm.c). rgemm: the recurrent product of one step
 * with its B operand packed once, C (M, N) += A (M, K) · B (K, N). B is
 * packed from row-major (K, N) with stride ldb, or with trans from its
 * transpose stored (N, K), into rgemm_packed_size(K, N) floats. rgemm runs
 * only where rgemm_available() (AVX-512 with FMA); elsewhere callers use
 * OpenBLAS. */
enum {
    RG_NR = 32,        /* columns of a packed panel */
    RG_SMALL = 1 << 24 /* multiply-adds up to which a product counts as small (rgemm_suits) */
};
size_t rgemm_packed_size(int K, int N);
void rgemm_pack(float *dst, const float *B, int K, int N, int ldb, int trans);
int rgemm_available(void);
/* Whether a product (M, N, K) should run on rgemm with `threads` BLAS
 * threads per rank: rgemm is available, and either the product is small (up
 * to 2^24 multiply-adds, where OpenBLAS's per-call packing and edges cost
 * most), or one thread serves it and A's rows of one k slice fit in 256 KiB
 * (a step's product; beyond, threaded OpenBLAS is faster, and OpenBLAS
 * blocks a big product's A better). Measured in tests/bench/README.md. */
int rgemm_suits(int threads, int M, int N, int K);
/* bias (N) or NULL: with it C = bias + A · B (each row), the previous C unread. */
void rgemm(int M, int N, int K, const float *A, int lda, const float *Bp, const float *bias,
           float *C, int ldc);
/* The same kernel with B unpacked, row-major (K, N) at stride ldb (the small
 * layers' products, where packing B would cost as much as the product):
 * C (M, N) += A · B, and C += A^T · B with A stored (K, M) at stride lda (a
 * weight gradient dW += dY^T · X, A = dY). */
void rgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc);
void rgemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc);

/* ======================================================= stacked RNN */

/* Called during a training step's backward as soon as the gradients of
 * tensors [first, end) are final: each tensor once per step, in an order that
 * is the same on every rank (the data-parallel trainer starts reducing them
 * while backward goes on). */
typedef void (*model_grad_hook)(void *ctx, int first, int end);

/* L layers, one or two directions (each direction Hd = H / dirs units;
 * outputs concatenated, OpenNMT's convention), dropout p between layers as
 * torch.nn.GRU(dropout=p). Layer 0 reads x (T, B, I) (or one-hot ids) and an
 * optional context (B, C); layers above read the previous layer's output. */
typedef struct rnn_stack {
    cell_kind cell;
    int L, dirs, I, C, H, Hd, onehot;
    int Tmax, Bmax;
    float dropout;
    rnn_dir *d;     /* (L * dirs), index l * dirs + dir */
    float **y;      /* (L) layer outputs (T, B, H); one direction: views of the
                       direction's states, valid after each forward */
    float **xin;    /* (L) inputs of layers 1..L-1 after dropout (T, B, H); [0] unused */
    float **mask;   /* (L) dropout masks scaled by 1/(1-p), layers 1..L-1 */
    float **dy;     /* (L) gradient of layer outputs (T, B, H) */
    float **dxin;   /* (L) gradient of layer inputs 1..L-1 */
    float *scratch; /* two directions: 4 (Bmax, H) blocks for a direction's state */
    float *mem;
    int use_dropout;                   /* set by the last forward */
    int first;                         /* index of the stack's first tensor (rnn_stack_bind) */
    const struct rnn_dropout_key *key; /* step by step: the dropout key of rnn_stack_begin */
    model_grad_hook hook;
    void *hook_ctx;
} rnn_stack;

int rnn_stack_init(rnn_stack *s, cell_kind cell, int L, int bidirectional, int I, int C, int H,
                   float dropout, int onehot, int Tmax, int Bmax);
void rnn_stack_free(rnn_stack *s);
/* Registers the stack's tensors under `prefix` ("encoder.rnn") in PyTorch's
 * names, in PyTorch's order; returns the index of the first. */
int rnn_stack_register(const rnn_stack *s, param_table *pt, const char *prefix);
/* Binds to a table whose buffers are allocated, starting at index `first`. */
void rnn_stack_bind(rnn_stack *s, const param_table *pt, int first);

/* Dropout key for the stack: masks are drawn from (seed, RNG_DROPOUT, step,
 * example[b], site·… ), so a row's mask depends on its global example id, not
 * on the rank holding it. example may be NULL when not training. */
typedef struct rnn_dropout_key {
    uint64_t seed;
    uint64_t step;
    uint32_t site;          /* keeps the encoder's and decoder's masks apart */
    const int64_t *example; /* (B) global example ids */
} rnn_dropout_key;

/* Packed sequences (PyTorch's PackedSequence): with bs non-NULL, the next
 * forward and backward run step t on rows 0 … bs[t]−1 only, bs non-increasing
 * and bs[0] ≤ B (rows sorted by length, longest first). Every (T, B, ·)
 * array of those calls (x, ids, y, dy, dx, carry) then holds the steps'
 * rows back to back: step t's rows start at Σ_{s<t} bs[s]. h0 and dh0 keep
 * B rows; hT/cT/dhT/dcT must be NULL. A row's results are those of the
 * unpacked run up to floating-point order, when nothing flows into its
 * steps past its length. One direction only (EINVAL otherwise); NULL
 * returns to B rows at every step. bs must stay valid until then. */
int rnn_stack_set_packed(rnn_stack *s, const int *bs);

/* Layer 0's input rows are an embedding of ids in [0, vocab) (dropout never
 * touches them): each distinct id's row is projected once per forward (see
 * rnn_dir_share_inputs), and rnn_stack_backward's dx becomes (U, I), one row
 * per distinct id of the last forward, in the order of
 * rnn_stack_input_ids. MODEL_EINVAL with one-hot input, MODEL_ENOMEM. */
int rnn_stack_share_inputs(rnn_stack *s, int vocab);
const int32_t *rnn_stack_input_ids(const rnn_stack *s, int *U);

/* Step by step (rnn_dir_begin; one direction): rnn_stack_begin lays out T
 * steps (packed when set) from h0/c0 (L, B, H) or zeros, with dropout between
 * layers keyed by *drop (NULL: none; it must stay valid until
 * rnn_stack_backward_end); rnn_stack_step runs step t of every layer on x,
 * step t's rows (n, I) at stride ldx; the layers' outputs are s->y[l] (N, H)
 * as after rnn_stack_forward. rnn_stack_top_state: the top layer's state
 * after step t (t = −1: its initial state). The backward:
 * rnn_stack_backward_begin, rnn_stack_backward_step for t = T−1 … 0 (dy_top:
 * the gradient of step t's top output (n, H), or NULL; dx (n, I) at stride
 * lddx added to when not NULL), rnn_stack_top_dstate (the top layer's
 * gradient of the state before step t, which callers may add to), and
 * rnn_stack_backward_end with layer 0's inputs of every step x (N, I): the
 * parameter gradients (the hook announces each layer), dh0/dc0 (L, B, H)
 * added to when not NULL. MODEL_EINVAL for two directions. */
int rnn_stack_begin(rnn_stack *s, int T, int B, const float *h0, const float *c0,
                    const struct rnn_dropout_key *drop);
void rnn_stack_step(rnn_stack *s, int t, int B, const float *x, int ldx);
const float *rnn_stack_top_state(const rnn_stack *s, int t, int B);
void rnn_stack_backward_begin(rnn_stack *s, int B);
void rnn_stack_backward_step(rnn_stack *s, int t, int B, const float *dy_top, float *dx, int lddx);
float *rnn_stack_top_dstate(const rnn_stack *s);
void rnn_stack_backward_end(rnn_stack *s, int T, int B, const float *x, float *dh0, float *dc0);

/* h0/c0 (L, B, H) or NULL; hT/cT (L, B, H) or NULL. The final state of a
 * bidirectional layer is [forward's h(T−1) ; reverse's h(0)]. The output of
 * the top layer is s->y[L-1]. drop = NULL disables dropout (evaluation). */
void rnn_stack_forward(rnn_stack *s, int T, int B, const float *x, const int32_t *ids,
                       const float *ctx, const float *h0, const float *c0, float *hT, float *cT,
                       const rnn_dropout_key *drop);
/* dy_top (T, B, H) or NULL; dhT/dcT (L, B, H) or NULL; dx (T, B, I) added to when
 * not NULL ((U, I) with shared inputs, rnn_stack_share_inputs); dctx (B, C),
 * dh0/dc0 (L, B, H) added to when not NULL. */
void rnn_stack_backward(rnn_stack *s, int T, int B, const float *x, const int32_t *ids,
                        const float *ctx, const float *dy_top, const float *dhT, const float *dcT,
                        const float *carry, float *dx, float *dctx, float *dh0, float *dc0);

/* ============================================================= attention */

/* Additive (Bahdanau) attention, d2l's AdditiveAttention with num_hiddens H
 * and no biases, as torch.nn.Linear(bias=False) layers:
 *   scores (S) = w_v · tanh(W_q q + W_k k_s)   q (H), keys k_s (K), s < S
 *   weights    = softmax of the scores over s < valid (0 past it; a valid
 *                length of 0 weighs all S positions alike, as the book's
 *                masked_softmax), then dropout p (training)
 *   context    = Σ_s weights_s · v_s           values = keys (K)
 * W_q (H, H), W_k (H, K), w_v (1, H). The keys are a batch's (S, B, K),
 * time-major; attn_begin projects them once (W_k k, not per query). The
 * queries of a batch come in steps, each step's n rows (rows b < n of the
 * keys' batch) at `row0`, the step's first row in a layout of all steps'
 * rows (N ≤ Tmax·Bmax). Dropout is keyed by (seed, RNG_DROPOUT, step,
 * example[b], the site ((key->site·64 + 63)·Tmax + t)), a stream over the
 * source positions: it does not depend on the rank holding a row. */
typedef struct attn_layer {
    int H, K, Tmax, Bmax; /* Tmax bounds S (source steps) and the decoder's steps */
    float dropout;
    const float *W_q, *W_k, *w_v;
    float *dW_q, *dW_k, *dw_v;
    int S, B;            /* the batch of attn_begin */
    const float *keys;   /* (S, B, K) */
    int32_t *valid;      /* (Bmax) */
    float *kp, *dkp;     /* (Tmax, Bmax, H) W_k k and its gradient */
    float *qp, *dqp;     /* (Tmax·Bmax, H) W_q q of every query row; one step's gradient */
    float *w, *mask;     /* (Tmax·Bmax, Tmax) weights (before dropout), dropout scales */
    float *f, *ds, *dwd; /* (Tmax, H), (Tmax), (Tmax) one row's features and gradients */
    int dropped;         /* the last forward used dropout */
    float *mem;
} attn_layer;

int attn_init(attn_layer *a, int H, int K, int Tmax, int Bmax, float dropout);
void attn_free(attn_layer *a);
void attn_bind(attn_layer *a, const float *W_q, const float *W_k, const float *w_v, float *dW_q,
               float *dW_k, float *dw_v);
/* A batch: keys (S, B, K), valid (B) lengths in [0, S]. */
void attn_begin(attn_layer *a, int S, int B, const float *keys, const int32_t *valid);
/* One step's queries q (n, H) at stride ldq → contexts ctx (n, K) at stride
 * ldc; weights kept at rows row0 … row0 + n − 1 (attn_weights). drop NULL:
 * no dropout; t keys the masks. */
void attn_forward(attn_layer *a, size_t row0, int n, const float *q, int ldq, float *ctx, int ldc,
                  const struct rnn_dropout_key *drop, int t);
/* The weights (before dropout) of row `row` of the last forwards: S floats. */
const float *attn_weights(const attn_layer *a, size_t row);
/* Backward of one step (the forward's q, row0, n): dctx (n, K) at stride
 * lddc; adds into dW_q, w_v's gradient, dq (n, H) at stride lddq, and the
 * values' gradient dkeys (S, B, K). attn_backward_begin before the first
 * step's backward; attn_backward_end after the last: W_k's gradient and
 * the keys' part of dkeys. */
void attn_backward_begin(attn_layer *a);
void attn_backward(attn_layer *a, size_t row0, int n, const float *q, int ldq, const float *dctx,
                   int lddc, float *dq, int lddq, float *dkeys);
void attn_backward_end(attn_layer *a, float *dkeys);

/* ================================================================ models */

typedef enum { MODEL_TRANSLATE = 0, MODEL_LM = 1 } model_task;

/* Reserved token ids, the same in every vocabulary of seqpar (data/ assigns
 * them): <pad> 0, <bos> 1, <eos> 2, <unk> 3. The decoder's first input is
 * MODEL_BOS. */
#define MODEL_BOS 1

typedef struct model_config {
    model_task task;
    cell_kind cell;
    int layers;
    int embed; /* 0: one-hot inputs (row lookup into W_ih) */
    int hidden;
    float dropout;
    int bidirectional; /* encoder only */
    int src_vocab;     /* translation */
    int tgt_vocab;     /* translation target / LM vocabulary */
    int num_steps;     /* Tmax */
    int max_batch;     /* Bmax: the largest slice this rank will hold */
    int attention;     /* model_attention (translation; 0 = none) */
} model_config;

/* The decoder's attention (--attention): none, the book's seq2seq decoder
 * with a fixed context; additive, its Bahdanau decoder (d2l's
 * Seq2SeqAttentionDecoder): at step t the query is the top layer's state
 * before the step (an LSTM's h), keys = values = the encoder's top-layer
 * outputs (T, B, H) (a bidirectional encoder's two halves concatenated, as
 * its final state), the source's valid length its non-<pad> tokens, and the
 * decoder's input concat(context_t, embedding(y_{t−1})), size H + E.
 * Needs embeddings (embed ≥ 1). Tensors decoder.attention.W_q.weight (H, H),
 * decoder.attention.W_k.weight (H, H), decoder.attention.w_v.weight (1, H). */
typedef enum { MODEL_ATTN_NONE = 0, MODEL_ATTN_ADDITIVE = 1 } model_attention;

/* A batch slice, batch-major as the data loader gives it. */
typedef struct model_batch {
    int B, T;
    const int32_t *src;       /* (B, T) encoder input ids; LM: input ids */
    const int32_t *tgt;       /* (B, T) target ids (translation: y; LM: next tokens) */
    const int32_t *tgt_valid; /* (B) target valid lengths (translation); NULL = all */
    const int64_t *example;   /* (B) global example ids (dropout / truncation keys) */
    uint64_t seed, step;      /* dropout / truncation keys */
    /* LM carried state, (L, B, H) each (c only for LSTM): read as the initial
     * state, overwritten with the final state (detached); NULL = zeros. */
    float *state_h, *state_c;
} model_batch;

/* Truncated backpropagation through time for the LM. */
typedef enum { BPTT_FULL = 0, BPTT_FIXED = 1, BPTT_RANDOM = 2 } bptt_mode;

typedef struct model model;

int model_create(model **out, const model_config *cfg, char *err, size_t errlen);
void model_free(model *m);
/* Makes `replica` (created from the same configuration, any max_batch) read
 * `primary`'s parameters: its own parameter buffer is freed and it uses
 * primary's from now on, keeping its own gradient buffer and workspace. A
 * trainer's in-process workers are such replicas; primary must outlive them.
 * MODEL_EINVAL if the two models differ in anything but max_batch. */
int model_share_params(model *replica, model *primary);
/* Backward adds into `grad` (total + PARAM_GRAD_TAIL floats, laid out as
 * the model's own gradient) until called again; NULL gives the model's own
 * buffer back. Every layer's gradient pointers follow. */
void model_use_grad(model *m, float *grad);
const model_config *model_get_config(const model *m);
param_table *model_params(model *m);
/* Initialises parameters as d2l does for seq2seq (Xavier-uniform weights of
 * dense and recurrent layers, N(0,1) embeddings, PyTorch's default
 * U(±1/√H) recurrent biases and U(±1/√fan_in) dense bias); keyed by seed. */
void model_init_params(model *m, uint64_t seed);
void model_set_bptt(model *m, bptt_mode mode, int k);
/* Label smoothing eps in [0, 1) of the training loss (xent_smooth_forward_backward;
 * 0, the default, is plain cross-entropy). Evaluation (train = 0) is always
 * plain cross-entropy. */
void model_set_label_smoothing(model *m, float eps);

/* Forward and backward on one slice: adds d(Σ loss)/dθ into the gradient
 * buffer (not divided by anything: the trainer divides by the global token
 * count after the allreduce). train = 0 disables dropout and the backward
 * (evaluation: loss only). Returns MODEL_OK, or MODEL_EINVAL for a bad shape
 * or a token id outside the vocabulary; *loss_sum and *tokens are the
 * summed cross-entropy and the number of counted target tokens. No
 * allocation. */
int model_step(model *m, const model_batch *b, int train, double *loss_sum, long *tokens);

/* Matrix-multiply work of one training step on batch b (forward and
 * backward, counted as 3 × the forward's 2·M·N·K), in FLOP: *padded as the
 * model defines it (every decoder step, logits at every position) and
 * *executed as model_step ran it, so call it after the step (the decoder up
 * to the longest target, logits at live positions only, each distinct input
 * token projected once). One-hot inputs are lookups, not products. */
void model_matmul_flops(const model *m, const model_batch *b, double *padded, double *executed);

/* Installs (fn non-NULL) or removes the backward's gradient-ready hook: a
 * training model_step announces every tensor through it exactly once. */
void model_set_grad_hook(model *m, model_grad_hook fn, void *ctx);

/* The (T, B, V) logits of the last model_step with train = 0. */
const float *model_last_logits(const model *m);

/* Greedy decoding of B ≤ max_batch sentences (src (B, T)): writes up to
 * max_len ids per row into out (B, max_len), stopping a row at <eos> (which is
 * not written); len[b] receives the count. bos/eos are the target ids. */
int model_greedy(model *m, const int32_t *src, int B, int T, int bos, int eos, int max_len,
                 int32_t *out, int *len);

/* Beam search (d2l's beam-search section, Marian's shrinking beam): for each
 * of B sentences, k hypotheses grow by the k best one-token extensions of
 * the live ones by summed log probability; one that ends in <eos> is set
 * aside as finished and its sentence keeps k − (finished) live beams, so a
 * sentence stops when none are live or at max_len. The result is the
 * candidate (finished, or live at max_len) with the best score / L^alpha, L
 * its length counting <eos>. k = 1 is model_greedy (the same search; no
 * workspace). Needs B·k ≤ max_batch; out/len as model_greedy. Allocates its
 * workspace once per call (not per token); MODEL_ENOMEM if that fails. */
int model_beam(model *m, const int32_t *src, int B, int T, int bos, int eos, int max_len, int k,
               float alpha, int32_t *out, int *len);

/* Records the attention weights of the next model_greedy / model_beam calls
 * (attention models; MODEL_EINVAL otherwise; buf NULL stops): sentence b's
 * output token j (<eos> included when produced, i.e. when len[b] <
 * max_len) gets row j of its block, buf[(b·max_len + j)·T …] (T floats,
 * over the source steps, 0 past the source's valid length); beam search
 * records its chosen hypothesis. buf holds B·max_len·T floats. */
int model_record_attention(model *m, float *buf);

/* LM generation: feeds prefix (n ids) then produces `len` ids into out, greedy
 * when temperature <= 0, else sampling keyed by (seed). */
int model_lm_generate(model *m, const int32_t *prefix, int n, int len, float temperature,
                      uint64_t seed, int32_t *out);

/* ============================================================ optimizers */

typedef enum { OPT_SGD = 0, OPT_ADAM = 1, OPT_ADAMW = 2 } opt_kind;

/* lr is the rate of the next update: a schedule sets it before each one.
 * weight_decay (AdamW only): decoupled, as torch.optim.AdamW,
 * p ← p·(1 − lr·λ) before Adam's step. */
typedef struct optimizer {
    opt_kind kind;
    float lr, beta1, beta2, eps;
    float weight_decay;
    long t;       /* steps taken (Adam bias correction) */
    float *m, *v; /* moments, the parameter table's layout (Adam, AdamW) */
    size_t n;
} optimizer;

int optimizer_init(optimizer *o, opt_kind kind, float lr, const param_table *pt);
void optimizer_free(optimizer *o);
/* One update from the gradient buffer, as torch.optim.SGD / Adam; leaves the
 * gradient buffer zeroed (it is optimizer_step_scaled with scale 1). */
void optimizer_step(optimizer *o, param_table *pt);
/* The same update from scale·g (the token average and the clipping factor in
 * one), leaving the gradient buffer zeroed: the training step's one pass. */
void optimizer_step_scaled(optimizer *o, param_table *pt, float scale);
/* The same update cut in pieces, for threads that share the buffer out:
 * optimizer_begin once per step, then optimizer_apply over ranges [lo, hi)
 * of the buffer that together cover it (each element's update is its own,
 * so the pieces give the bits of the whole). */
void optimizer_begin(optimizer *o);
void optimizer_apply(const optimizer *o, param_table *pt, float scale, size_t lo, size_t hi);
/* A training step's update from summed gradients: average over `tokens`
 * (> 0), clip to global norm `clip` (<= 0: no clipping), step, zero the
 * gradient; returns the averaged gradient's norm before clipping. */
double optimizer_update(optimizer *o, param_table *pt, double tokens, double clip);
/* The scale optimizer_update applies to summed gradients, whose average over
 * `tokens` has norm `norm`: the token average and the clipping in one (for
 * callers that take the norm and run optimizer_apply themselves). */
float optimizer_update_scale(double norm, double tokens, double clip);
int opt_parse(const char *s, opt_kind *out);
const char *opt_name(opt_kind k); /* "sgd", "adam", "adamw" */
int opt_has_moments(opt_kind k);  /* Adam and AdamW keep m and v */

/* Scales every gradient by `scale`. (The trainer uses optimizer_update;
 * grad_scale and grad_clip remain for callers that work on the gradient.) */
void grad_scale(param_table *pt, float scale);
/* Global L2 norm of the gradient (double accumulation): Σ g² of each chunk
 * of GRAD_CHUNK floats, the chunks' sums added in order, so threads that
 * each sum whole chunks (grad_chunk_sums) give the same bits. */
enum { GRAD_CHUNK = 1 << 14 };
double grad_norm(const param_table *pt);
/* Σ g² of each chunk c of g (n floats) that starts in [lo, hi), into out[c];
 * lo a multiple of GRAD_CHUNK. grad_norm_of_chunks then adds the sums of all
 * the chunks of n floats in chunk order: grad_norm's bits. */
void grad_chunk_sums(const float *g, size_t n, size_t lo, size_t hi, double *out);
double grad_norm_of_chunks(const double *sums, size_t n);
/* g ← min(1, θ/‖g‖) g; returns ‖g‖ before clipping. θ <= 0: no clipping. */
double grad_clip(param_table *pt, double theta);
/* min(1, θ/norm), or 1 when θ <= 0: the factor grad_clip applies. */
double grad_clip_factor(double norm, double theta);

#endif
