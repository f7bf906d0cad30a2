/* progress.c - the progress seqlock of tc.h and the arithmetic behind its
 * figures.
 *
 * Threading: one writer (the thread running tc_run), any number of readers
 * in any thread or process. Every field is a C11 atomic with sequentially
 * consistent order, so a reader that sees the same even seq before and
 * after its loads has a consistent copy. */
#include <math.h>

#include "transcode/tc.h"
#include "internal.h"

void tc_progress_init(struct tc_progress *p)
{
    atomic_store(&p->seq, 0);
    atomic_store(&p->frames, 0);
    atomic_store(&p->out_time_s, 0.0);
    atomic_store(&p->percent, 0.0);
    atomic_store(&p->fps, 0.0);
    atomic_store(&p->speed, 0.0);
    atomic_store(&p->eta_s, -1.0);
}

void tc_progress_read(const struct tc_progress *p, struct tc_progress_snapshot *out)
{
    const struct tc_progress *q = p;
    for (;;) {
        uint32_t s1 = atomic_load(&q->seq);
        if (s1 & 1u)
            continue;
        out->frames = atomic_load(&q->frames);
        out->out_time_s = atomic_load(&q->out_time_s);
        out->percent = atomic_load(&q->percent);
        out->fps = atomic_load(&q->fps);
        out->speed = atomic_load(&q->speed);
        out->eta_s = atomic_load(&q->eta_s);
        if (atomic_load(&q->seq) == s1)
            return;
    }
}

void tc_progress_write(struct tc_progress *p, const struct tc_progress_snapshot *in)
{
    uint32_t s = atomic_load(&p->seq);
    double percent = in->percent;
    double old = atomic_load(&p->percent);
    if (!(percent >= 0.0)) /* NaN too */
        percent = 0.0;
    if (percent > 100.0)
        percent = 100.0;
    if (percent < old)
        percent = old;
    atomic_store(&p->seq, s + 1);
    atomic_store(&p->frames, in->frames);
    atomic_store(&p->out_time_s, in->out_time_s);
    atomic_store(&p->percent, percent);
    atomic_store(&p->fps, in->fps);
    atomic_store(&p->speed, in->speed);
    atomic_store(&p->eta_s, in->eta_s);
    atomic_store(&p->seq, s + 2);
}

void tc_progress_compute(double out_time_s, double duration_s, double elapsed_s,
                         int64_t frames, struct tc_progress_snapshot *snap)
{
    if (!(out_time_s > 0.0))
        out_time_s = 0.0;
    snap->frames = frames;
    snap->out_time_s = out_time_s;
    snap->percent = 0.0;
    snap->fps = elapsed_s > 0.0 ? (double)frames / elapsed_s : 0.0;
    snap->speed = elapsed_s > 0.0 ? out_time_s / elapsed_s : 0.0;
    snap->eta_s = -1.0;
    if (duration_s > 0.0) {
        double pct = out_time_s / duration_s * 100.0;
        /* 100 is said only by a run that finished. */
        snap->percent = pct > 99.9 ? 99.9 : pct;
        if (snap->speed > 0.0 && out_time_s > 0.0) {
            double left = duration_s - out_time_s;
            snap->eta_s = left > 0.0 ? left / snap->speed : 0.0;
        }
    }
    if (!isfinite(snap->fps))
        snap->fps = 0.0;
}
