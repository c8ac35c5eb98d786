/* test_exec.c: a worker's execution of jobs (server/exec.h), driven directly with real
 * sessions of a real (small, random) model, no threads:
 *   - steps of several sessions run as one group, each with its own answer and t;
 *   - when the engine refuses batches of a group, each job gets its own message (it used to
 *     get the first job's);
 *   - a seq retry is answered again in the format of the retry (JSON after protobuf),
 *     without stepping;
 *   - a stateless run next to steps gets its answer (it used to be able to get status 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "api.pb-c.h"
#include "exec.h"
#include "registry.h"

static const tm_spec SPEC = {.n_in = 12, .n_layers = 2, .n = {10, 6}, .readout = 3, .seed = 7};

static spk_model *model;
static ss_mver *mv;
static ss_table *table;
static ss_metrics *metrics;

static ss_job *step_job(ss_sess *s, const spk_event *ev, size_t n, uint32_t steps, int seq,
                        const ss_codec *c) {
    ss_job *j = ss_job_new(SS_JOB_STEP);
    ss_sess_ref(s);
    j->sess = s;
    j->codec = c;
    j->batch.steps = steps;
    j->batch.has_seq = seq > 0;
    j->batch.seq = (uint64_t)(seq > 0 ? seq : 0);
    j->batch.outputs = ss_outputs_default(model);
    j->batch.events = malloc((n + 1) * sizeof *ev);
    memcpy(j->batch.events, ev, n * sizeof *ev);
    j->batch.n_events = n;
    return j;
}

static ss_sess *new_session(const char *id) {
    ss_sess *s = ss_sess_create(id, mv, 0, 60);
    ss_table_insert(table, s);
    ss_sess_ref(s);
    return s;
}

int main(void) {
    model = tm_load(&SPEC);
    ss_reg *reg = ss_reg_create(".");
    mv = ss_reg_adopt(reg, model); /* the registry owns the model now */
    table = ss_table_create(16);
    metrics = ss_metrics_create(1, 1);
    ss_exec_env env = {table, metrics, "", NULL, 0, NULL};
    char err[256];
    ss_exec *x = ss_exec_create(&env, 0, err, sizeof err);
    if (!ok(x != NULL, "an exec context")) return done_testing();
    ss_sess *a = new_session("a"), *b = new_session("b");

    /* a group of two good steps */
    spk_event ev[] = {{0, 1, 1.0f}, {1, 3, 1.0f}, {2, 5, 0.5f}};
    ss_job *g[3] = {step_job(a, ev, 3, 4, 1, &ss_codec_json),
                    step_job(b, ev, 2, 6, 1, &ss_codec_pb), ss_job_new(SS_JOB_INFER)};
    g[2]->model = model;
    g[2]->mv = mv;
    ss_reg_ref(mv);
    g[2]->batch.steps = 2;
    g[2]->batch.outputs = ss_outputs_default(model);
    ss_exec_run(x, g, 3);
    ok(g[0]->reply.status == 200 && g[0]->reply.ctype && !strcmp(g[0]->reply.ctype, SS_CT_JSON) &&
           strstr((char *)g[0]->reply.body, "\"t0\":0,\"steps\":4"),
       "session a: 200 in JSON, 4 steps from t 0");
    Spikeserve__StepResult *pr =
        g[1]->reply.body ? spikeserve__step_result__unpack(NULL, g[1]->reply.len, g[1]->reply.body)
                         : NULL;
    ok(g[1]->reply.status == 200 && pr && pr->steps == 6 && pr->seq == 1,
       "session b: 200 in protobuf, 6 steps, seq 1");
    if (pr) spikeserve__step_result__free_unpacked(pr, NULL);
    ok(g[2]->reply.status == 200 && g[2]->reply.body, "the stateless run next to them: 200");
    ok(a->t == 4 && b->t == 6, "t moved: a 4, b 6");

    /* a retry of b's seq 1 in JSON: the stored answer, not a second step */
    ss_job *r = step_job(b, ev, 2, 6, 1, &ss_codec_json);
    ss_exec_run(x, &r, 1);
    ok(r->reply.status == 200 && strstr((char *)r->reply.body, "\"seq\":1,\"t0\":0,\"steps\":6") &&
           b->t == 6,
       "a retry of seq 1 in JSON: the same answer (t0 0, 6 steps), b still at t 6");
    ss_job_free(r);
    for (int i = 0; i < 3; i++)
        ss_job_free(g[i]);

    /* a group whose batches the engine refuses: each its own message */
    spk_event bad_a[] = {{0, 100, 1.0f}}, bad_b[] = {{0, 2, 1.0f}, {1, 200, 1.0f}};
    ss_job *h[2] = {step_job(a, bad_a, 1, 2, 0, &ss_codec_json),
                    step_job(b, bad_b, 2, 2, 0, &ss_codec_json)};
    ss_exec_run(x, h, 2);
    ok(h[0]->reply.status == 400 && strstr(h[0]->reply.msg, "input 100"),
       "a's refusal names a's event (input 100)");
    ok(h[1]->reply.status == 400 && strstr(h[1]->reply.msg, "events[1]") &&
           strstr(h[1]->reply.msg, "input 200"),
       "b's refusal names b's own event (events[1], input 200), not a's");
    diag("a: %s; b: %s", h[0]->reply.msg, h[1]->reply.msg);
    ok(a->t == 4 && b->t == 6, "neither moved");
    ss_job_free(h[0]);
    ss_job_free(h[1]);

    ss_sess_unref(a);
    ss_sess_unref(b);
    ss_exec_free(x);
    ss_table_free(table);
    ss_metrics_free(metrics);
    ss_reg_unref(mv);
    ss_reg_free(reg);
    return done_testing();
}
