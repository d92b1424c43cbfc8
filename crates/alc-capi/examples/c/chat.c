/*
 * chat.c: open SmolLM2 through the alc C API, complete "The capital of France is"
 * greedily, print the tokens as they arrive, then free everything.
 *
 *   cc -std=c11 -I crates/alc-capi/include crates/alc-capi/examples/c/chat.c \
 *      -L target/release -lalc_capi -Wl,-rpath,target/release -o chat
 *   ./chat models/smollm2-135m-instruct-q4_1.gguf
 */
#include <stdio.h>
#include <string.h>

#include "alc.h"

static int on_token(const char *token, size_t len, void *user_data) {
    size_t *count = (size_t *)user_data;
    fwrite(token, 1, len, stdout);
    fflush(stdout);
    *count += 1;
    return 1; /* go on; 0 would cancel */
}

static int fail(const char *what, alc_status s) {
    fprintf(stderr, "%s failed: %s: %s\n", what, alc_status_name(s), alc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/smollm2-135m-instruct-q4_1.gguf";
    const char *prompt = argc > 2 ? argv[2] : "The capital of France is";
    printf("alc %s\n", alc_version());

    alc_model *model = NULL;
    alc_status s = alc_open(path, 0 /* threads: all */, 512 /* ctx */, &model);
    if (s != ALC_STATUS_OK) return fail("alc_open", s);

    alc_model_info info;
    s = alc_model_get_info(model, &info);
    if (s != ALC_STATUS_OK) return fail("alc_model_get_info", s);
    printf("context %llu tokens, vocabulary %llu\n", (unsigned long long)info.n_ctx,
           (unsigned long long)info.n_vocab);

    alc_session *session = NULL;
    s = alc_session_new(model, &session);
    if (s != ALC_STATUS_OK) return fail("alc_session_new", s);

    alc_params params;
    alc_params_default(&params);
    params.temperature = 0.0f; /* greedy */
    params.max_tokens = 16;

    size_t count = 0;
    alc_stats stats;
    printf("%s", prompt);
    s = alc_generate(session, prompt, &params, on_token, &count, &stats);
    printf("\n");
    if (s != ALC_STATUS_OK) return fail("alc_generate", s);
    printf("[%zu pieces, %llu tokens, prefill %.1f ms, decode %.1f ms, stop %d]\n", count,
           (unsigned long long)stats.generated, stats.prefill_ms, stats.decode_ms, (int)stats.stop);

    /* The same completion, pulled token by token. */
    alc_stream *stream = NULL;
    s = alc_generate_start(session, prompt, &params, &stream);
    if (s != ALC_STATUS_OK) return fail("alc_generate_start", s);
    char buf[256];
    size_t len = 0;
    printf("stream:");
    while ((s = alc_stream_next(stream, buf, sizeof buf, &len)) == ALC_STATUS_OK) {
        printf("%s", buf);
    }
    printf("\n");
    if (s != ALC_STATUS_DONE) return fail("alc_stream_next", s);
    alc_stream_free(stream);

    /* Handles are checked: a second free is an error, not a crash. */
    alc_session_free(session);
    s = alc_session_free(session);
    printf("double free: %s\n", alc_status_name(s));
    alc_model_free(model);
    return 0;
}
