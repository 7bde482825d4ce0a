/* The translation-pair reader (data_pairs_load, data/corpus.c) on any file:
 * tab-separated lines, UTF-8, normalisation, tokens, vocabularies and the
 * held-out split. The first byte picks the options (num_steps, min_freq,
 * held-out pairs, a limit on pairs), the rest is the file. A reader must
 * load it or refuse it with a status and a message, never crash, hang or
 * leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    const char *path = fuzz_write_file(data + 1, size - 1);
    if (!path) return 0;
    data_pairs_opts o = {.dataset = path,
                         .num_steps = 1 + (opt & 7),
                         .min_freq = 1 + ((opt >> 3) & 1),
                         .valid = (opt >> 4) & 3,
                         .num_examples = (opt & 0x40) ? 3 : 0,
                         .seed = opt};
    data_pairs train, valid;
    char err[512] = "";
    if (data_pairs_load(&train, &valid, &o, err, sizeof err) == DATA_OK) {
        /* what the trainer reads of a loaded set: ids inside the
         * vocabularies, valid lengths inside num_steps */
        for (long i = 0; i < (long)train.n * train.num_steps; i++)
            if (train.src[i] < 0 || train.src[i] >= train.src_vocab.size || train.tgt[i] < 0 ||
                train.tgt[i] >= train.tgt_vocab.size)
                abort();
        for (int i = 0; i < train.n; i++)
            if (train.src_valid[i] > train.num_steps || train.tgt_valid[i] > train.num_steps)
                abort();
        data_pairs_free(&valid);
        data_pairs_free(&train);
    } else if (!err[0]) {
        abort(); /* a refusal names its reason */
    }
    return 0;
}
