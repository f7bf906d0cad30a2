/*
 * sched_runner.c - one running job, start to end, on its runner thread
 * (started by sched.c's dispatcher, which joins it): a URL job's fetch,
 * the worker (worker.h), the description of the outputs, their delivery
 * to upload_url, and the end written to the store, then to memory. The
 * state and its locking are told in sched.c's DESIGN comment.
 */
#define _GNU_SOURCE
#include "jobs/sched_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "common/log.h"
#include "jobs/deliver_out.h"
#include "jobs/fetch_input.h"

/* How often a running job's progress is written to the store (seconds;
 * 1 on a shared store, where other nodes read it). */
enum { PERSIST_EVERY_S = 2 };

static void on_start(void *opaque, pid_t pid)
{
    struct sched_runner *r = opaque;
    pthread_mutex_lock(&r->s->lock);
    r->j->pid = pid;
    pthread_mutex_unlock(&r->s->lock);
    if (pid > 0)
        log_info("job worker started id=%s worker_pid=%d", r->id, (int)pid);
    else
        log_info("job worker started id=%s isolation=thread", r->id);
}

static void on_progress(void *opaque, const struct tc_progress_snapshot *snap)
{
    struct sched_runner *r = opaque;
    struct sched *s = r->s;
    struct job_progress p = {snap->percent, snap->out_time_s, snap->fps,
                             snap->speed,   snap->eta_s,      snap->frames};
    int persist = 0;
    double now = job_now();
    pthread_mutex_lock(&s->lock);
    if (p.percent > 99.9) /* 100 is for a succeeded job only */
        p.percent = 99.9;
    if (p.percent < r->j->job.progress.percent)
        p.percent = r->j->job.progress.percent;
    memcpy(p.phase, r->j->job.progress.phase, sizeof(p.phase)); /* a URL job's */
    r->j->job.progress = p;
    r->j->dirty = 1;
    if (now - r->j->last_persist >= (s->shared ? 1 : PERSIST_EVERY_S)) {
        r->j->last_persist = now;
        persist = 1;
    }
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, r->id, 0);
    if (!persist)
        return;
    if (store_job_progress(s->st, r->id, &p) == STORE_ECONFLICT && s->shared) {
        /* This node was presumed dead and the job requeued: stop working
         * on it, touch neither its row nor its files. */
        log_warn("job taken over by another node id=%s: stopping it here", r->id);
        pthread_mutex_lock(&s->lock);
        r->j->lost = 1;
        sched_stop_job(r->j);
        pthread_mutex_unlock(&s->lock);
    }
}

/* The fetch phase of a URL job (fetch_input.h): its bytes in progress. */
static void on_fetch_progress(void *opaque, int64_t have, int64_t total)
{
    struct sched_runner *r = opaque;
    pthread_mutex_lock(&r->s->lock);
    r->j->job.progress.fetch_bytes = have;
    r->j->job.progress.fetch_total = total;
    r->j->dirty = 1;
    pthread_mutex_unlock(&r->s->lock);
    sched_notify(r->s, r->id, 0);
}

/* A URL job's first phase, in its slot: fetch, probe, move into place, and
 * the new "input" object into memory and the store. 0 (go on), 1
 * (stopped) or -1 (failed: wr's code and message). */
static int fetch_phase(struct sched *s, struct sched_runner *r, struct job *job,
                       struct worker_result *wr)
{
    char *input = NULL;
    char code[FETCH_INPUT_CODE_MAX], message[FETCH_INPUT_MESSAGE_MAX];
    struct fetch_input_params fp = {
        .data_dir = s->data_dir,
        .id = job->id,
        .input_path = job->input_path,
        .input_json = job->input_json,
        .rule = s->cfg.fetch_rule,
        .max_bytes = s->cfg.fetch_max_bytes,
        .isolation = s->cfg.isolation,
        .exe = s->exe,
        .max_memory = s->cfg.worker_max_memory,
        .stop = &r->j->stop,
        .on_progress = on_fetch_progress,
        .opaque = r,
    };
    pthread_mutex_lock(&s->lock);
    snprintf(r->j->job.progress.phase, sizeof(r->j->job.progress.phase), "fetching");
    r->j->job.progress.fetch_bytes = 0;
    r->j->job.progress.fetch_total = -1;
    r->j->dirty = 1;
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, r->id, 0);
    int rc = fetch_input_run(&fp, &input, code, message);
    if (rc < 0) {
        snprintf(wr->code, sizeof(wr->code), "%.40s", code);
        snprintf(wr->message, sizeof(wr->message), "%.250s", message);
        return -1;
    }
    if (input && store_job_set_input(s->st, r->id, input) != STORE_OK)
        log_warn("job input not stored id=%s", r->id);
    pthread_mutex_lock(&s->lock);
    snprintf(r->j->job.progress.phase, sizeof(r->j->job.progress.phase), "transcoding");
    if (input) {
        free(r->j->job.input_json);
        r->j->job.input_json = strdup(input);
    }
    r->j->dirty = 1;
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, r->id, 0);
    free(input);
    return rc;
}

/* The delivering phase (deliver_out.h): bytes sent so far. */
static void on_deliver_progress(void *opaque, int64_t sent, int64_t total)
{
    struct sched_runner *r = opaque;
    pthread_mutex_lock(&r->s->lock);
    snprintf(r->j->job.progress.phase, sizeof(r->j->job.progress.phase), "delivering");
    r->j->job.progress.deliver_bytes = sent;
    r->j->job.progress.deliver_total = total;
    r->j->dirty = 1;
    pthread_mutex_unlock(&r->s->lock);
    sched_notify(r->s, r->id, 0);
}

/* A job's last phase when outputs carry upload_url: PUT them, and say
 * where in *results. 0, 1 (stopped) or -1 (failed: wr's code, message). */
static int deliver_phase(struct sched *s, struct sched_runner *r, const struct job *job,
                         const struct tc_output *outs, size_t n, char **results,
                         struct worker_result *wr)
{
    const char *paths[WORKER_MAX_OUTPUTS];
    char code[DELIVER_OUT_CODE_MAX], message[DELIVER_OUT_MESSAGE_MAX];
    for (size_t i = 0; i < n; i++)
        paths[i] = outs[i].path; /* where the worker wrote them */
    struct deliver_out_params dp = {
        .id = job->id,
        .outputs_json = job->outputs_json,
        .paths = paths,
        .n = n,
        .rule = s->cfg.fetch_rule,
        .stop = &r->j->stop,
        .on_progress = on_deliver_progress,
        .opaque = r,
    };
    int rc = deliver_out_run(&dp, results, code, message);
    if (rc < 0) {
        snprintf(wr->code, sizeof(wr->code), "%.40s", code);
        snprintf(wr->message, sizeof(wr->message), "%.250s", message);
    }
    return rc;
}

/* The outputs of job as the library wants them; paths in paths[], in
 * attempt's folder (0: the job's folder; job.h "Fenced attempts"). */
static int build_outputs(struct sched *s, const struct job *job, int attempt,
                         struct tc_output *outs, char (*paths)[1400], size_t *n, char *err,
                         size_t errlen)
{
    int ret = -1;
    json_t *list = json_loads(job->outputs_json ? job->outputs_json : "[]", 0, NULL);
    size_t i;
    json_t *o;
    *n = 0;
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > WORKER_MAX_OUTPUTS) {
        snprintf(err, errlen, "the job has no valid outputs");
        goto out;
    }
    json_array_foreach(list, i, o) {
        struct tc_error terr = {0};
        memset(&outs[i], 0, sizeof(outs[i]));
        if (tc_spec_parse(json_object_get(o, "spec"), &outs[i].spec, &terr) < 0) {
            snprintf(err, errlen, "%s", terr.message);
            goto out;
        }
        const char *preset = json_string_value(json_object_get(o, "preset"));
        snprintf(outs[i].spec.preset, sizeof(outs[i].spec.preset), "%s", preset ? preset : "");
        if (job_attempt_output_path(paths[i], sizeof(paths[i]), s->data_dir, job->id, attempt,
                                    outs[i].spec.name, outs[i].spec.container) < 0) {
            snprintf(err, errlen, "output path too long");
            goto out;
        }
        outs[i].path = paths[i];
    }
    *n = i;
    ret = 0;
out:
    json_decref(list);
    return ret;
}

/* results_json for a succeeded run: size and duration from the run,
 * video/audio (and whether each was copied) from probing each finished
 * file output. An output can carry the input's own (copied) bitstream:
 * that one is probed as isolated as the job was. A folder output (hls,
 * sprite) is described by the run's result alone. New string or NULL. */
static char *results_json(const struct sched *s, const struct tc_output *outs,
                          const struct tc_output_result *res, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (tc_container_is_folder(outs[i].spec.container)) {
            if (json_array_append_new(arr, tc_output_result_to_json(&outs[i], &res[i])) < 0) {
                json_decref(arr);
                arr = NULL;
            }
            continue;
        }
        json_t *video = NULL, *audio = NULL;
        double duration = res[i].duration_s;
        struct tc_media_info info;
        struct tc_error err;
        /* What our own encoders and muxer wrote is trusted and probed
         * here (a child costs ~0.13 s); an output that carries a copied
         * (input) stream is probed as isolated as its job was. */
        int copied = res[i].video_copied || res[i].audio_copied;
        struct worker_probe_params probe = {
            .isolation = copied ? s->cfg.isolation : WORKER_THREAD,
            .exe = s->cfg.exe,
            .path = outs[i].path,
            .max_memory = s->cfg.worker_max_memory,
            .nice = s->cfg.worker_nice,
            .timeout_s = 60,
        };
        if (worker_probe(&probe, &info, &err) == 0) {
            json_t *in = tc_media_info_to_json(&info, NULL);
            video = json_incref(json_object_get(in, "video"));
            audio = json_incref(json_object_get(in, "audio"));
            if (info.duration_s > 0)
                duration = info.duration_s;
            json_decref(in);
        }
        /* Whether each stream was copied from the input (remux fast path). */
        if (json_is_object(video))
            json_object_set_new(video, "copied", json_boolean(res[i].video_copied));
        if (json_is_object(audio))
            json_object_set_new(audio, "copied", json_boolean(res[i].audio_copied));
        json_array_append_new(arr, json_pack("{s:I, s:f, s:o, s:o}", "size",
                                             (json_int_t)res[i].size, "duration_s", duration,
                                             "video", video ? video : json_null(), "audio",
                                             audio ? audio : json_null()));
    }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return text;
}

void *sched_runner_main(void *arg)
{
    struct sched_runner *r = arg;
    struct sched *s = r->s;
    struct sjob *j = r->j;
    struct job job;
    struct tc_output outs[WORKER_MAX_OUTPUTS];
    char paths[WORKER_MAX_OUTPUTS][1400];
    size_t n = 0;
    char err[256] = "";
    struct worker_result *wr = calloc(1, sizeof(*wr));
    char *results = NULL;
    char dir[1400], adir[1400];
    enum job_status final = JOB_FAILED;
    const char *code = "internal_error";
    const char *message = "out of memory";
    int requeue = 0, keep_outputs = 0;

    pthread_mutex_lock(&s->lock);
    int copied = job_copy(&job, &j->job);
    /* Several nodes: this attempt writes only in its own folder, and only
     * the store's current attempt may end the job (job.h). */
    int attempt = s->shared ? j->job.attempts : 0;
    pthread_mutex_unlock(&s->lock);
    if (copied < 0 || !wr)
        goto decided;
    /* Older attempts' folders (a node killed or hung mid-job) are garbage
     * now that the store gave the job to this attempt. */
    if (attempt > 0)
        job_remove_other_attempts(s->data_dir, job.id, attempt);
    if (build_outputs(s, &job, attempt, outs, paths, &n, err, sizeof(err)) < 0 ||
        job_output_dir(dir, sizeof(dir), s->data_dir, job.id) < 0 ||
        (mkdir(dir, 0755) < 0 && errno != EEXIST) ||
        job_attempt_dir(adir, sizeof(adir), s->data_dir, job.id, attempt) < 0 ||
        (attempt > 0 && mkdir(adir, 0755) < 0 && errno != EEXIST)) {
        code = "internal_error";
        message = err[0] ? err : "cannot create the output folder";
        goto decided;
    }
    int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_lock(&s->lock);
    j->wake_fd = wake;
    pthread_mutex_unlock(&s->lock);
    int fetched = 0;
    if (!atomic_load(&j->stop) && fetch_input_is_url(job.input_json))
        fetched = fetch_phase(s, r, &job, wr);
    if (fetched < 0) {
        wr->outcome = WORKER_FAILED;
    } else if (fetched == 0 && !atomic_load(&j->stop)) {
        struct worker_params wp = {
            .isolation = s->cfg.isolation,
            .exe = s->exe,
            .input_path = job.input_path,
            .outputs = outs,
            .n_outputs = n,
            .timeout_s = s->cfg.job_timeout_s,
            .max_memory = s->cfg.worker_max_memory,
            .nice = s->cfg.worker_nice,
            .threads = s->cfg.job_threads,
            .stop = &j->stop,
            .wake_fd = wake,
            .on_start = on_start,
            .on_progress = on_progress,
            .opaque = r,
        };
        int asked = 0;
        for (size_t i = 0; i < n; i++)
            if (outs[i].spec.threads > asked)
                asked = outs[i].spec.threads;
        log_info("job threads id=%s threads=%d source=%s", job.id,
                 asked > 0 ? asked : s->cfg.job_threads, asked > 0 ? "job" : "server");
        worker_run(&wp, wr);
    } else {
        wr->outcome = WORKER_STOPPED;
    }
    pthread_mutex_lock(&s->lock);
    j->wake_fd = -1;
    pthread_mutex_unlock(&s->lock);
    if (wake >= 0)
        close(wake);
    switch (wr->outcome) {
    case WORKER_SUCCEEDED:
        results = results_json(s, outs, wr->results, n);
        final = JOB_SUCCEEDED;
        code = message = NULL;
        break;
    case WORKER_STOPPED:
        pthread_mutex_lock(&s->lock);
        requeue = j->requeue;
        pthread_mutex_unlock(&s->lock);
        final = JOB_CANCELED;
        code = message = NULL;
        break;
    default:
        final = JOB_FAILED;
        code = wr->code;
        message = wr->message;
        break;
    }
    int delivered = final == JOB_SUCCEEDED && deliver_out_wanted(job.outputs_json)
                        ? deliver_phase(s, r, &job, outs, n, &results, wr)
                        : 0;
    if (delivered > 0) { /* stopped while delivering: as a stopped worker */
        pthread_mutex_lock(&s->lock);
        requeue = j->requeue;
        pthread_mutex_unlock(&s->lock);
        final = JOB_CANCELED;
    } else if (delivered < 0) { /* the local outputs stay downloadable */
        final = JOB_FAILED;
        code = wr->code;
        message = wr->message;
        keep_outputs = 1;
    }
decided:;
    pthread_mutex_lock(&s->lock);
    int lost = j->lost;
    /* A cancel answered 202 wins over an end the worker reached in the
     * meantime (the client was told the job ends canceled); from here on
     * the outcome is decided and a cancel is answered 409. */
    if (j->cancel_requested && !requeue && final != JOB_CANCELED) {
        final = JOB_CANCELED;
        code = message = NULL;
        keep_outputs = 0;
    }
    j->ending = 1;
    pthread_mutex_unlock(&s->lock);
    if (final == JOB_CANCELED) {
        free(results);
        results = NULL;
    }
    int rc;
    if (lost) {
        rc = STORE_ECONFLICT; /* not ours: forget it (below) */
    } else if (s->shared && !requeue) {
        /* Several nodes: the end first, the files after. The end is fenced
         * on this node and this attempt; a succeeded job's outputs are
         * its attempt's folder from that commit on (no file moves), so a
         * stale attempt can never replace them. Files are touched only if
         * the job was still ours: else the job's folder belongs to the
         * attempt that has it now, maybe on another node. */
        enum job_status ended = final;
        rc = store_job_finish_attempt(s->st, r->id, attempt, final, code, message, results,
                                      &ended);
        if (rc == STORE_OK && ended != final) {
            /* Canceled through the store (another node, or this one before
             * the job reached memory) after the worker's end: the store's
             * word is final. */
            final = ended;
            code = message = NULL;
            keep_outputs = 0;
        }
        if (rc == STORE_OK && final != JOB_SUCCEEDED && !keep_outputs)
            job_remove_outputs(s->data_dir, r->id);
        else if (rc == STORE_OK)
            job_remove_other_attempts(s->data_dir, r->id, attempt);
    } else {
        /* Shared store, stopping: only this attempt's folder (if the
         * requeue is refused, the job is another attempt's). */
        if (final != JOB_SUCCEEDED && !keep_outputs && attempt > 0)
            job_remove_attempt(s->data_dir, r->id, attempt);
        else if (final != JOB_SUCCEEDED && !keep_outputs)
            job_remove_outputs(s->data_dir, r->id);
        if (requeue)
            rc = store_job_requeue(s->st, r->id);
        else
            rc = store_job_finish(s->st, r->id, final, code, message, results);
    }
    if (rc == STORE_ECONFLICT && attempt > 0) {
        /* A stale attempt: its files are garbage, never the job's. */
        job_remove_attempt(s->data_dir, r->id, attempt);
        log_warn("stale attempt discarded id=%s attempt=%d", r->id, attempt);
    }
    if (rc != STORE_OK && !lost)
        log_error("job end not stored id=%s error=%s", r->id, store_strerror(rc));
    if (requeue)
        log_info("job requeued id=%s", r->id);
    else
        log_info("job ended id=%s status=%s%s%s", r->id, job_status_name(final),
                 code ? " error=" : "", code ? code : "");

    pthread_mutex_lock(&s->lock);
    j->pid = 0;
    /* Shared store: a requeued job is the store's again (another node may
     * claim it), and a job whose end was refused (this node was presumed
     * dead and the job taken over) is not ours: memory forgets both. */
    struct sjob *forget = NULL;
    if (s->shared && (requeue || rc == STORE_ECONFLICT)) {
        sched_hash_remove(s, j);
        forget = j;
        sched_cache_touch(s, r->id); /* the status cache reads it back */
        if (!requeue)
            log_warn("job end refused id=%s: another node has it now", r->id);
        sched_count_move(s, JOB_RUNNING, -1);
    } else if (requeue) {
        j->ending = 0;
        j->job.status = JOB_QUEUED;
        j->job.started_at = 0;
        memset(&j->job.progress, 0, sizeof(j->job.progress));
        sched_count_move(s, JOB_RUNNING, JOB_QUEUED);
    } else {
        double now = job_now();
        j->job.status = final;
        j->job.finished_at = now;
        if (final == JOB_SUCCEEDED || keep_outputs) {
            if (final == JOB_SUCCEEDED) {
                j->job.progress.percent = 100;
                j->job.progress.eta_s = 0;
            }
            free(j->job.results_json);
            j->job.results_json = results;
            results = NULL;
        }
        if (code) {
            j->job.error_code = strdup(code);
            j->job.error_message = strdup(message ? message : "");
        }
        sched_count_move(s, JOB_RUNNING, final);
        if (final != JOB_CANCELED && j->job.started_at > 0) {
            sched_count_duration(s, now - j->job.started_at);
        }
        sched_finished_add(s, j);
    }
    j->dirty = 1;
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, r->id, !requeue && !forget);
    sched_sjob_free(forget);

    if (copied == 0)
        job_clear(&job);
    free(results);
    free(wr);
    free(r);
    /* Last touch of the scheduler: free the slot and ask to be joined
     * (sched_stop frees s only after joining every runner). */
    pthread_mutex_lock(&s->lock);
    s->ended[s->n_ended++] = pthread_self();
    s->n_running--;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}
