/* Unit tests of the sprite-sheet writer (sprite.c): WebVTT times, cue
 * counts, and a whole sheet set from synthetic frames in a scratch
 * folder: which frame each tile shows (gaps, a video shorter than the
 * duration), the sheet files and sizes, the index, the rename into place,
 * and that an unfinished or discarded output leaves nothing. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
#include <transcode/tc.h>

#include "internal.h"

enum { TW = 32, TH = 18 };

static void vtt_times(void **state)
{
    (void)state;
    char b[32];
    tc_sprite_vtt_time(0, b, sizeof(b));
    assert_string_equal(b, "00:00:00.000");
    tc_sprite_vtt_time(3723.4567, b, sizeof(b));
    assert_string_equal(b, "01:02:03.457");
    tc_sprite_vtt_time(59.9996, b, sizeof(b));
    assert_string_equal(b, "00:01:00.000");
    tc_sprite_vtt_time(-1, b, sizeof(b));
    assert_string_equal(b, "00:00:00.000");
}

static void cue_counts(void **state)
{
    (void)state;
    assert_int_equal(tc_sprite_cue_count(10.0, 5.0), 2);
    assert_int_equal(tc_sprite_cue_count(10.04, 5.0), 3);
    assert_int_equal(tc_sprite_cue_count(0.04, 5.0), 1);
    assert_int_equal(tc_sprite_cue_count(1000.0, 0.1), 10000);
    assert_int_equal(tc_sprite_cue_count(0.0, 5.0), 0);
}

static AVFrame *tile(int luma)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->format = AV_PIX_FMT_YUVJ420P;
    f->width = TW;
    f->height = TH;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    for (int y = 0; y < TH; y++)
        memset(f->data[0] + y * f->linesize[0], luma, TW);
    for (int p = 1; p < 3; p++)
        for (int y = 0; y < TH / 2; y++)
            memset(f->data[p] + y * f->linesize[p], 128, TW / 2);
    return f;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Decode a JPEG sheet; its size out and its luma at (x, y). */
static int sheet_luma(const char *path, int x, int y, int *w, int *h)
{
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = calloc(1, (size_t)size + AV_INPUT_BUFFER_PADDING_SIZE);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *dc = avcodec_alloc_context3(c);
    assert_int_equal(avcodec_open2(dc, c, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    pkt->data = (uint8_t *)data;
    pkt->size = (int)size;
    assert_int_equal(avcodec_send_packet(dc, pkt), 0);
    assert_int_equal(avcodec_receive_frame(dc, fr), 0);
    *w = fr->width;
    *h = fr->height;
    int v = x < fr->width && y < fr->height ? fr->data[0][y * fr->linesize[0] + x] : -1;
    av_frame_free(&fr);
    pkt->data = NULL;
    pkt->size = 0;
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    free(data);
    return v;
}

static void near(int got, int want)
{
    if (abs(got - want) > 6)
        fail_msg("luma %d, want %d", got, want);
}

static void sheets_and_index(void **state)
{
    (void)state;
    char dir[] = "/tmp/vidq-sprite-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], part[256], file[300];
    snprintf(path, sizeof(path), "%s/out", dir);
    snprintf(part, sizeof(part), "%s/out.part", dir);

    /* 1 s tiles, 3 x 2 a sheet, a 7.5 s input whose video: 25 fps frames
     * at 0..0.96 s (luma 40), a still from 1 s to 3.2 s (luma 80), then
     * 25 fps to 5 s (luma 160). */
    struct tc_sprite_spec ss = {.interval_s = 1.0, .columns = 3, .rows = 2};
    struct tc_sprite *s = NULL;
    struct tc_error err = {0};
    assert_int_equal(tc_sprite_open(path, &ss, TW, TH, 7.5, &s, &err), 0);
    struct stat st;
    assert_int_equal(stat(part, &st), 0);
    int offered = 0;
    for (int i = 0; i < 125; i++) {
        double t = i / 25.0;
        if (t > 1.0 && t < 3.2)
            continue;
        int luma = t < 1.0 ? 40 : t < 3.2 ? 80 : 160;
        if (!tc_sprite_want(s, t))
            continue;
        AVFrame *f = tile(luma);
        int rc = tc_sprite_add(s, f, t, &err);
        av_frame_free(&f);
        if (rc != 0)
            fail_msg("add at %.2f: %s", t, err.message);
        offered++;
    }
    /* Tiles 0..4 start at 0, 1, (3.2 covers 3), 4: four frames offered. */
    assert_int_equal(offered, 4);
    struct tc_output_result res = {0};
    assert_int_equal(tc_sprite_finish(s, 7.5, &res, &err), 0);
    assert_true(res.size > 0);
    /* What it reports: the layout used, 8 tiles on 2 sheets, the first 3 x 2. */
    assert_int_equal(res.sprite.tile_width, TW);
    assert_int_equal(res.sprite.tile_height, TH);
    assert_int_equal(res.sprite.columns, 3);
    assert_int_equal(res.sprite.rows, 2);
    assert_int_equal(res.sprite.sheet_width, 3 * TW);
    assert_int_equal(res.sprite.sheet_height, 2 * TH);
    assert_int_equal(res.sprite.sheets, 2);
    assert_int_equal(res.sprite.tiles, 8);
    assert_true(res.sprite.interval_s == 1.0);
    assert_int_not_equal(stat(part, &st), 0); /* renamed */

    /* 8 cues: sheet 0 holds 6 (96 x 36), sheet 1 holds 2 (96 x 18). */
    int w, h;
    snprintf(file, sizeof(file), "%s/sheet-0000.jpg", path);
    /* tile 0: 40; 1: 80 (the still); 2: 80 (the still); 3: 160 (3.2 s);
     * 4: 160; 5..7: the last frame (160). */
    static const int want0[] = {40, 80, 80, 160, 160, 160};
    for (int i = 0; i < 6; i++)
        near(sheet_luma(file, i % 3 * TW + TW / 2, i / 3 * TH + TH / 2, &w, &h), want0[i]);
    assert_int_equal(w, 3 * TW);
    assert_int_equal(h, 2 * TH);
    snprintf(file, sizeof(file), "%s/sheet-0001.jpg", path);
    near(sheet_luma(file, TW / 2, TH / 2, &w, &h), 160);
    assert_int_equal(w, 3 * TW);
    assert_int_equal(h, TH);
    snprintf(file, sizeof(file), "%s/sheet-0002.jpg", path);
    assert_int_not_equal(access(file, F_OK), 0);

    snprintf(file, sizeof(file), "%s/thumbnails.vtt", path);
    char *vtt = slurp(file);
    assert_non_null(vtt);
    assert_non_null(strstr(vtt, "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsheet-0000.jpg#xywh=0,0,32,18\n"));
    assert_non_null(strstr(vtt, "\n00:00:04.000 --> 00:00:05.000\nsheet-0000.jpg#xywh=32,18,32,18\n"));
    assert_non_null(strstr(vtt, "\n00:00:07.000 --> 00:00:07.500\nsheet-0001.jpg#xywh=32,0,32,18\n"));
    int cues = 0;
    for (const char *p = vtt; (p = strstr(p, " --> ")); p++)
        cues++;
    assert_int_equal(cues, 8);
    free(vtt);

    /* A later failure of the run: the finished folder goes. */
    tc_sprite_discard(s);
    assert_int_not_equal(stat(path, &st), 0);
    tc_sprite_free(&s);
    assert_null(s);

    /* Unfinished: freeing removes the .part folder; no frame: an error. */
    assert_int_equal(tc_sprite_open(path, &ss, TW, TH, 0.0, &s, &err), 0);
    assert_int_equal(tc_sprite_finish(s, 0.0, &res, &err), TC_EDECODE);
    AVFrame *f = tile(10);
    assert_true(tc_sprite_want(s, NAN));
    assert_int_equal(tc_sprite_add(s, f, NAN, &err), 0);
    av_frame_free(&f);
    tc_sprite_free(&s);
    assert_int_not_equal(stat(part, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);

    /* A wrong tile size is refused, not written out of bounds. */
    assert_int_equal(tc_sprite_open(path, &ss, TW + 2, TH, 0.0, &s, &err), 0);
    f = tile(10);
    assert_int_equal(tc_sprite_add(s, f, 0.0, &err), TC_EINTERNAL);
    av_frame_free(&f);
    tc_sprite_free(&s);
    tc_sprite_free(&s); /* NULL-safe */
    assert_int_equal(rmdir(dir), 0); /* nothing left inside */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vtt_times),
        cmocka_unit_test(cue_counts),
        cmocka_unit_test(sheets_and_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
