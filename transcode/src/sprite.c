/* sprite.c - a "sprite" output: a folder of JPEG sprite sheets (a tile of
 * the video every interval_s seconds, columns x rows tiles a sheet) and
 * thumbnails.vtt, a WebVTT index for players' seek-bar previews whose cue
 * for [i*interval, (i+1)*interval) names tile i: "sheet-0000.jpg#xywh=x,y,w,h".
 *
 * DESIGN
 *   Tiles: tile i shows the first decoded frame at or after i*interval_s
 *   (input time, the start taken off). The pipeline asks tc_sprite_want
 *   for every decoded frame and scales only the wanted ones (the output's
 *   own filter chain: rotation, never upscaled, yuvj420p at the tile
 *   size); tc_sprite_add copies each into the current sheet. A gap longer
 *   than the interval (variable frame rate, a still) repeats the frame on
 *   screen during it, so tile i always belongs to cue i.
 *   Count: with a known duration d there are ceil(d / interval_s) cues;
 *   tiles the video stream does not reach (audio longer than video) repeat
 *   its last frame. Unknown duration: one cue per tile made. At most
 *   TC_SPRITE_MAX_TILES tiles (tc_spec_check_input refuses a spec that
 *   would need more for a known duration).
 *   Sheets: columns x rows tiles, each side at most TC_SPRITE_MAX_SIDE
 *   pixels (columns and rows are reduced to fit). A sheet is encoded
 *   (MJPEG, full range) as soon as it is full; the last one is cropped to
 *   the rows it uses, and a single sheet also to the columns it uses.
 *   Files: everything is written into "<path>.part/" and the folder is
 *   renamed to <path> by tc_sprite_finish; tc_sprite_discard removes
 *   either.
 *
 * Memory: one sheet (at most 4096 x 4096 yuvj420p, 24 MiB) and one tile.
 * Threading: one pipeline thread per object. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/avstring.h>
#include <libavutil/frame.h>
#include <libavutil/mem.h>
#include <libavutil/pixfmt.h>

#include "transcode/tc.h"
#include "internal.h"

struct tc_sprite {
    char *path, *part;          /* the final folder and "<path>.part" */
    double interval;
    int cols, rows, tile_w, tile_h;
    int64_t n_cues;             /* from the duration; 0 = unknown */
    int64_t wanted;             /* the next tile tc_sprite_want waits for */
    int64_t filled;             /* tiles placed */
    AVFrame *sheet;             /* the sheet being filled */
    int in_sheet;               /* tiles in it */
    int sheets;                 /* sheets written */
    int sheet_w, sheet_h;       /* the first one's size */
    AVFrame *last;              /* the last tile, for tiles past the video */
    double last_t;              /* time of the last frame added */
    double want_t;              /* time of the last frame asked about */
    int64_t bytes;              /* written so far */
    int finished;               /* renamed into place */
};

/* Remove a flat folder of our files (no subfolders are ever made). */
static void rm_folder(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p))
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int io_error(struct tc_error *err, int e, const char *what, const char *path)
{
    return tc_error_set(err, e == ENOSPC || e == EDQUOT ? TC_ENOSPC : TC_EIO, "%s '%s': %s", what,
                        path, strerror(e));
}

void tc_sprite_vtt_time(double t, char *buf, size_t size)
{
    if (!(t > 0))
        t = 0;
    int64_t ms = (int64_t)llround(t * 1000.0);
    snprintf(buf, size, "%02lld:%02lld:%02lld.%03lld", (long long)(ms / 3600000),
             (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), (long long)(ms % 1000));
}

int64_t tc_sprite_cue_count(double duration_s, double interval_s)
{
    if (!(duration_s > 0) || !(interval_s > 0))
        return 0;
    double n = ceil(duration_s / interval_s - 1e-6);
    return n < 1 ? 1 : (int64_t)n;
}

int tc_sprite_open(const char *path, const struct tc_sprite_spec *ss, int tile_w, int tile_h,
                   double duration_s, struct tc_sprite **out, struct tc_error *err)
{
    struct tc_sprite *s = NULL;
    int ret;

    *out = NULL;
    if (tile_w < 2 || tile_h < 2 || tile_w > TC_SPRITE_MAX_SIDE || tile_h > TC_SPRITE_MAX_SIDE ||
        ss->interval_s <= 0 || ss->columns < 1 || ss->rows < 1)
        return tc_error_set(err, TC_EINVALID_OUTPUT, "sprite: bad tile size %dx%d or layout",
                            tile_w, tile_h);
    if (!(s = av_mallocz(sizeof(*s))))
        goto nomem;
    s->interval = ss->interval_s;
    s->tile_w = tile_w;
    s->tile_h = tile_h;
    s->cols = ss->columns * tile_w > TC_SPRITE_MAX_SIDE ? TC_SPRITE_MAX_SIDE / tile_w : ss->columns;
    s->rows = ss->rows * tile_h > TC_SPRITE_MAX_SIDE ? TC_SPRITE_MAX_SIDE / tile_h : ss->rows;
    s->n_cues = tc_sprite_cue_count(duration_s, ss->interval_s);
    if (s->n_cues > TC_SPRITE_MAX_TILES)
        s->n_cues = TC_SPRITE_MAX_TILES;
    s->last_t = s->want_t = -1.0;
    s->path = av_strdup(path);
    s->part = av_asprintf("%s.part", path);
    s->sheet = av_frame_alloc();
    s->last = av_frame_alloc();
    if (!s->path || !s->part || !s->sheet || !s->last)
        goto nomem;
    s->sheet->format = AV_PIX_FMT_YUVJ420P;
    s->sheet->width = s->cols * tile_w;
    s->sheet->height = s->rows * tile_h;
    if (av_frame_get_buffer(s->sheet, 0) < 0)
        goto nomem;
    rm_folder(s->part); /* left by a crash */
    if (mkdir(s->part, 0755) != 0) {
        ret = io_error(err, errno, "cannot create the folder", s->part);
        av_freep(&s->part); /* not ours to remove */
        tc_sprite_free(&s);
        return ret;
    }
    *out = s;
    return 0;
nomem:
    tc_sprite_free(&s);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
}

void tc_sprite_discard(struct tc_sprite *s)
{
    if (!s)
        return;
    if (s->finished) {
        rm_folder(s->path);
        s->finished = 0;
    } else if (s->part) {
        rm_folder(s->part);
        av_freep(&s->part);
    }
}

void tc_sprite_free(struct tc_sprite **sp)
{
    if (!sp || !*sp)
        return;
    struct tc_sprite *s = *sp;
    if (!s->finished && s->part)
        rm_folder(s->part);
    av_free(s->path);
    av_free(s->part);
    av_frame_free(&s->sheet);
    av_frame_free(&s->last);
    av_free(s);
    *sp = NULL;
}

/* A usable time for t: frames without a timestamp count as 1/25 s after
 * the one before (*prev; -1 before the first). */
static double clock_of(double *prev, double t)
{
    if (isnan(t))
        t = *prev < 0 ? 0.0 : *prev + 0.04;
    *prev = t;
    return t;
}

/* The tile a frame at t opens (the slot whose start it is at or past). */
static int64_t slot_of(const struct tc_sprite *s, double t)
{
    double k = floor(t / s->interval + 1e-6);
    return k < 0 ? 0 : k > TC_SPRITE_MAX_TILES ? TC_SPRITE_MAX_TILES : (int64_t)k;
}

static int64_t max_tiles(const struct tc_sprite *s)
{
    return s->n_cues > 0 ? s->n_cues : TC_SPRITE_MAX_TILES;
}

int tc_sprite_want(struct tc_sprite *s, double t)
{
    t = clock_of(&s->want_t, t);
    if (s->wanted >= max_tiles(s))
        return 0;
    int64_t k = slot_of(s, t);
    if (k < s->wanted)
        return 0;
    s->wanted = k + 1;
    return 1;
}

struct sheet_file {
    FILE *f;
    int64_t bytes;
    int errnum;                 /* errno of a failed write */
};

static int write_jpeg(void *opaque, AVPacket *pkt)
{
    struct sheet_file *sf = opaque;
    if (fwrite(pkt->data, 1, (size_t)pkt->size, sf->f) != (size_t)pkt->size) {
        sf->errnum = errno ? errno : EIO;
        return AVERROR(sf->errnum);
    }
    sf->bytes += pkt->size;
    return 0;
}

/* Encode the current sheet (cropped to what it holds) as the next file. */
static int flush_sheet(struct tc_sprite *s, int last, struct tc_error *err)
{
    struct tc_encoder *enc = NULL;
    AVFrame *crop = NULL;
    struct sheet_file sf = {0};
    char name[4096];
    int ret;

    int cols = s->cols;
    if (last && s->sheets == 0 && s->in_sheet < cols)
        cols = s->in_sheet;
    int rows = (s->in_sheet + s->cols - 1) / s->cols;
    if (snprintf(name, sizeof(name), "%s/sheet-%04d.jpg", s->part, s->sheets) >= (int)sizeof(name))
        return tc_error_set(err, TC_EINVAL, "output path too long");
    struct tc_video_spec vs = {.codec = "mjpeg", .crf = -1};
    ret = tc_encoder_open_video(&vs, cols * s->tile_w, rows * s->tile_h, AV_PIX_FMT_YUVJ420P, 1, 1,
                                0, 0, 1, 0, 0, NULL, &enc, err);
    if (ret < 0)
        return ret;
    if (!(crop = av_frame_alloc()) || av_frame_ref(crop, s->sheet) < 0) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory");
        goto out;
    }
    crop->width = cols * s->tile_w;
    crop->height = rows * s->tile_h;
    crop->pts = 0;
    if (!(sf.f = fopen(name, "wb"))) {
        ret = io_error(err, errno, "cannot write", name);
        goto out;
    }
    int r = tc_encoder_send(enc, crop, write_jpeg, &sf);
    if (r >= 0)
        r = tc_encoder_send(enc, NULL, write_jpeg, &sf);
    if (r < 0) {
        ret = sf.errnum ? io_error(err, sf.errnum, "cannot write", name)
                        : tc_error_av(err, TC_EENCODE, r, "cannot encode a sprite sheet");
        goto out;
    }
    FILE *f = sf.f;
    sf.f = NULL;
    if (fclose(f) != 0) {
        ret = io_error(err, errno, "cannot write", name);
        goto out;
    }
    s->bytes += sf.bytes;
    if (s->sheets == 0) {
        s->sheet_w = crop->width;
        s->sheet_h = crop->height;
    }
    s->sheets++;
    s->in_sheet = 0;
    ret = 0;
out:
    if (sf.f)
        fclose(sf.f);
    av_frame_free(&crop);
    tc_encoder_free(&enc);
    return ret;
}

/* Copy a tile-sized yuvj420p frame into cell `cell` of the sheet. */
static void place(struct tc_sprite *s, const AVFrame *f, int cell)
{
    AVFrame *d = s->sheet;
    if (cell == 0) {
        /* A fresh sheet is black: cells a short sheet does not fill. */
        for (int y = 0; y < d->height; y++)
            memset(d->data[0] + (ptrdiff_t)y * d->linesize[0], 0, (size_t)d->width);
        for (int p = 1; p < 3; p++)
            for (int y = 0; y < d->height / 2; y++)
                memset(d->data[p] + (ptrdiff_t)y * d->linesize[p], 128, (size_t)d->width / 2);
    }
    int x = cell % s->cols * s->tile_w, y = cell / s->cols * s->tile_h;
    for (int r = 0; r < s->tile_h; r++)
        memcpy(d->data[0] + (ptrdiff_t)(y + r) * d->linesize[0] + x,
               f->data[0] + (ptrdiff_t)r * f->linesize[0], (size_t)s->tile_w);
    for (int p = 1; p < 3; p++)
        for (int r = 0; r < s->tile_h / 2; r++)
            memcpy(d->data[p] + (ptrdiff_t)(y / 2 + r) * d->linesize[p] + x / 2,
                   f->data[p] + (ptrdiff_t)r * f->linesize[p], (size_t)s->tile_w / 2);
}

/* Put f into every tile up to and including slot `upto`. */
static int fill_to(struct tc_sprite *s, const AVFrame *f, int64_t upto, struct tc_error *err)
{
    int per_sheet = s->cols * s->rows;
    int64_t cap = max_tiles(s);
    while (s->filled <= upto && s->filled < cap) {
        place(s, f, s->in_sheet);
        s->in_sheet++;
        s->filled++;
        if (s->in_sheet == per_sheet) {
            int ret = flush_sheet(s, 0, err);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

int tc_sprite_add(struct tc_sprite *s, const AVFrame *f, double t, struct tc_error *err)
{
    if (f->width != s->tile_w || f->height != s->tile_h || f->format != AV_PIX_FMT_YUVJ420P)
        return tc_error_set(err, TC_EINTERNAL, "sprite tile is %dx%d, want %dx%d", f->width,
                            f->height, s->tile_w, s->tile_h);
    /* Without a timestamp: the time tc_sprite_want gave the frame. */
    if (isnan(t))
        t = s->want_t < 0 ? 0.0 : s->want_t;
    s->last_t = t;
    int64_t k = slot_of(s, t);
    int ret;
    if (k < s->filled)
        return 0; /* a frame the chain held back, already covered */
    /* Tiles skipped over (a still, a gap) show what was on screen then:
     * the previous frame (this one if the video starts late). */
    if (k > s->filled &&
        (ret = fill_to(s, s->last->buf[0] ? s->last : f, k - 1, err)) < 0)
        return ret;
    if ((ret = fill_to(s, f, k, err)) < 0)
        return ret;
    av_frame_unref(s->last);
    if (av_frame_ref(s->last, f) < 0)
        return tc_error_set(err, TC_ENOMEM, "out of memory");
    return 0;
}

static int write_vtt(struct tc_sprite *s, double duration_s, struct tc_error *err)
{
    char name[4096], a[32], b[32];
    if (snprintf(name, sizeof(name), "%s/%s", s->part, TC_SPRITE_INDEX) >= (int)sizeof(name))
        return tc_error_set(err, TC_EINVAL, "output path too long");
    FILE *f = fopen(name, "w");
    if (!f)
        return io_error(err, errno, "cannot write", name);
    int per_sheet = s->cols * s->rows;
    fputs("WEBVTT\n", f);
    for (int64_t i = 0; i < s->filled; i++) {
        double start = (double)i * s->interval, end = (double)(i + 1) * s->interval;
        if (duration_s > 0 && end > duration_s)
            end = duration_s;
        if (end <= start)
            end = start + 0.001;
        int cell = (int)(i % per_sheet);
        tc_sprite_vtt_time(start, a, sizeof(a));
        tc_sprite_vtt_time(end, b, sizeof(b));
        fprintf(f, "\n%s --> %s\nsheet-%04d.jpg#xywh=%d,%d,%d,%d\n", a, b, (int)(i / per_sheet),
                cell % s->cols * s->tile_w, cell / s->cols * s->tile_h, s->tile_w, s->tile_h);
    }
    long size = ftell(f);
    int bad = ferror(f);
    int e = errno;
    if (fclose(f) != 0 || bad) {
        e = bad ? e : errno;
        return io_error(err, e ? e : EIO, "cannot write", name);
    }
    s->bytes += size > 0 ? size : 0;
    return 0;
}

int tc_sprite_finish(struct tc_sprite *s, double duration_s, struct tc_output_result *res,
                     struct tc_error *err)
{
    int ret;
    if (s->filled == 0)
        return tc_error_set(err, TC_EDECODE, "no video frame for the sprite sheet");
    /* Cues the video did not reach (a longer audio track) show its end. */
    if (s->n_cues > s->filled && (ret = fill_to(s, s->last, s->n_cues - 1, err)) < 0)
        return ret;
    if (s->in_sheet > 0 && (ret = flush_sheet(s, 1, err)) < 0)
        return ret;
    if ((ret = write_vtt(s, duration_s, err)) < 0)
        return ret;
    if (rename(s->part, s->path) != 0)
        return io_error(err, errno, "cannot move the sprite folder into place at", s->path);
    av_freep(&s->part);
    s->finished = 1;
    res->size = s->bytes;
    res->sprite = (struct tc_sprite_result){
        .tile_width = s->tile_w,
        .tile_height = s->tile_h,
        .columns = s->cols,
        .rows = s->rows,
        .sheet_width = s->sheet_w,
        .sheet_height = s->sheet_h,
        .sheets = s->sheets,
        .tiles = s->filled,
        .interval_s = s->interval,
    };
    return 0;
}
