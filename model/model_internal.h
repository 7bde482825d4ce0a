/* The model object, private to model/: models.c (the two models, decoding)
 * and attn_decoder.c (the attention decoder) share it. Shapes use the legend
 * of model.h. */
#ifndef SEQPAR_MODEL_INTERNAL_H
#define SEQPAR_MODEL_INTERNAL_H

#include "model.h"

struct model {
    model_config cfg;
    param_table pt;
    int onehot;
    /* parameter indices */
    int i_enc_emb, i_dec_emb, i_enc_rnn, i_dec_rnn, i_emb, i_rnn, i_dense_w, i_dense_b;
    int i_attn;         /* decoder.attention.W_k, W_q, w_v (adjacent), or −1 */
    rnn_stack enc, dec; /* translation */
    rnn_stack rnn;      /* LM */
    bptt_mode bptt;
    int bptt_k;
    float smoothing; /* label smoothing of the training loss (0: plain cross-entropy) */
    float *grad_own; /* its own gradient buffer while model_use_grad lends another (or NULL) */
    /* workspace, sized once for (Tmax, Bmax) */
    int32_t *ids_a, *ids_b,
        *ids_c;                 /* (T, B) time-major (training: packed) src / dec in / targets */
    float *xa, *xb, *dxa, *dxb; /* (T, B, E) embedded inputs and their gradients */
    float *st_h, *st_c;         /* (L, B, H) final states */
    float *dst_h, *dst_c;       /* (L, B, H) their gradients */
    float *st2_h, *st2_c;       /* (L, B, H) decoding: next state */
    float *ctx, *dctx;          /* (B, H) */
    float *logits;              /* (T, B, V) */
    float *dtop;                /* (T, B, H) */
    float *carry;               /* (T, B) */
    float *dws;                 /* the output layer's rgemm workspace (dws_n floats), or NULL */
    size_t dws_n;
    int32_t *order, *step_rows; /* training: rows longest target first (B), rows per step (T) */
    int64_t *rows;              /* (2B) fallback example ids, then the ordered ids */
    model_grad_hook hook;       /* see model_set_grad_hook */
    void *hook_ctx;
    int shared_data; /* pt.data is another model's (model_share_params): not freed here */
    int *done;       /* (B) */
    float *mem;
    /* the attention decoder (MODEL_ATTN_ADDITIVE; attn_decoder.c) */
    attn_layer attn;
    float *ax, *dax; /* (T·B, H + E) the decoder's inputs [context ; embedding] and gradients */
    float *keys;     /* (T, B, H) decoding: the encoder's outputs, one copy per beam */
    float *dkeys;    /* (T, B, H) the gradient of the encoder's outputs */
    int32_t *svalid; /* (B) the sources' valid lengths */
    int *all_rows;   /* (T) B at every step: the padded layout */
    float *rec;      /* model_record_attention's buffer, or NULL */
    int rec_len;     /* its rows per sentence */
    float *rec_w;    /* beam search: (B·k, max_len + 1, T) the live beams' weights */
    float *rec_tmp;  /* beam search: the next generation of rec_w */
};

/* models.c's helpers, shared with attn_decoder.c */
void mdl_grad_ready(const model *m, int i, int count);
const float *mdl_embed(model *m, int i_emb, float *x, const int32_t *ids, size_t N);
int mdl_target_len(const model_batch *b, int r);
void mdl_time_major(int32_t *dst, const int32_t *src, int B, int T);
/* Training's layout (step_translate_train): rows longest target first into
 * m->order, their example ids into m->rows + B, rows per decoder step into
 * m->step_rows, packed decoder inputs (teacher forcing) and targets into
 * m->ids_b / m->ids_c, the sorted sources time-major into m->ids_a; returns
 * the packed rows N and the decoder's steps in *Td. */
size_t mdl_pack_rows(model *m, const model_batch *b, int *Td);

/* attn_decoder.c: the attention model's parts of model_create, model_step
 * and decoding. */
int attn_model_create(model *m);
void attn_model_free(model *m);
void attn_model_bind(model *m); /* after the parameter buffer moved (model_share_params) */
/* The training loss and d(Σ loss)/d(logits) in place: plain cross-entropy
 * unless label smoothing is on (models.c). */
double model_train_xent(const model *m, float *logits, const int32_t *tgt, int N, int V,
                        long *tokens);
int attn_step_train(model *m, const model_batch *b, double *loss_sum, long *tokens);
int attn_step_eval(model *m, const model_batch *b, double *loss_sum, long *tokens);
/* Decoding: after the encoder ran on B sentences (m->st_h its final
 * states), attn_decode_begin keeps its outputs as keys, each sentence's
 * copied to `k` consecutive rows (beams); attn_decode_step is decode_step
 * with attention for R rows. */
void attn_decode_begin(model *m, const int32_t *src_tm, int B, int T, int k);
void attn_decode_step(model *m, const int32_t *tok, int R, const float *h, const float *c,
                      float *h2, float *c2);

#endif
