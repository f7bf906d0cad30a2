/*
 * internal.h - declarations shared by the library's own modules; never
 * installed, never included from svc/. Modules here may use libav types.
 *
 * Threading: every function works on the objects it is given; nothing here
 * keeps global state except avlog.c's callback (set once at start-up).
 */
#ifndef VIDQ_TC_INTERNAL_H
#define VIDQ_TC_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <libavutil/mastering_display_metadata.h>

#include "transcode/tc.h"

struct AVFormatContext;
struct AVStream;
struct AVCodecContext;
struct AVFrame;
struct AVPacket;

/* Log one line through the caller's callback (see tc_set_log). */
void tc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Map an AVERROR to a TC_E* code; fallback is used for the generic ones. */
int tc_averror_code(int averr, int fallback);

/* Fill err with code and "<what>: <av_err2str(averr)>". Returns code. */
int tc_error_av(struct tc_error *err, int code, int averr, const char *what);

/* ---------------------------------------------------------- input_guard.c */

enum {
    TC_MAX_STREAMS = 32,               /* more streams than this: refused */
    TC_MAX_PIXELS = 8192 * 8192,       /* largest frame we decode */
    TC_MAX_SIDE = 16384,               /* longest side of a frame */
};

/* An untrusted input opened from a local file (by path or descriptor) only. */
struct tc_input {
    struct AVFormatContext *fmt;   /* owned; demuxer of an allowed format */
    int64_t size;                  /* file size in bytes */
};

/* Open path as an untrusted input: regular file only, read through our own
 * AVIOContext over a file descriptor (no protocol can be reached), format
 * detected from the bytes and checked against an allow-list of ordinary
 * containers (playlists, scripts, devices refused before their demuxer
 * runs), stream count capped, stream info read. cancel (may be NULL) aborts
 * blocking reads. TC_EUNSUPPORTED, TC_EIO or TC_ECANCELED on failure. */
int tc_input_open(const char *path, atomic_int *cancel, struct tc_input **out,
                  struct tc_error *err);
/* The same over an already-open descriptor, borrowed: never closed, its
 * file offset never moved (read with pread), nothing opened by path.
 * TC_EINVAL if fd < 0. */
int tc_input_open_fd(int fd, atomic_int *cancel, struct tc_input **out, struct tc_error *err);
void tc_input_close(struct tc_input **in);

/* 1 if a demuxer short name is one we accept as untrusted input. */
int tc_input_format_allowed(const char *name);

/* ---------------------------------------------------------------- probe.c */

/* Describe an opened input; pick the best decodable video (not a cover
 * picture) and audio stream (-1 if none). TC_EUNSUPPORTED when neither. */
int tc_probe_input(const struct tc_input *in, struct tc_media_info *info,
                   int *video_index, int *audio_index, struct tc_error *err);

/* Display rotation of a stream in degrees clockwise: 0, 90, 180 or 270. */
int tc_stream_rotation(const struct AVStream *st);

/* A stream's object of the API ("video"/"audio" of the input object). New
 * reference, NULL on out-of-memory. */
json_t *tc_video_info_to_json(const struct tc_video_info *vi);
json_t *tc_audio_info_to_json(const struct tc_audio_info *ai);

/* --------------------------------------------------------------- colour.c */

/* The colour of a stream or an output: AVColor* values, and the HDR
 * metadata that goes with a PQ/HLG transfer (DESIGN in colour.c). */
struct tc_colour {
    int primaries, transfer, matrix, range;
    int has_mastering, has_light;
    AVMasteringDisplayMetadata mastering;
    AVContentLightMetadata light;
};

/* 1 for the PQ and HLG transfers. */
int tc_colour_is_hdr(int transfer);
/* The colour of a video stream, unspecified fields resolved as players
 * resolve them (BT.709 for HD, BT.601 for SD), with the container's HDR
 * side data. */
void tc_colour_of_stream(const struct AVStream *st, struct tc_colour *c);
/* Take mastering display (AVMasteringDisplayMetadata) or content light
 * level (AVContentLightMetadata) metadata into c. */
void tc_colour_set_mastering(struct tc_colour *c, const void *mdm);
void tc_colour_set_light(struct tc_colour *c, const void *cll);
/* Read the HDR metadata of the first picture of stream vi of the input
 * (path, or the borrowed descriptor fd when path is NULL, as
 * tc_run_params says) into c, where c has none yet (SEI/OBU metadata no
 * container box repeats). Decodes one picture; failures leave c as it was. */
void tc_colour_peek_hdr(const char *path, int fd, int vi, struct tc_colour *c);
/* 1 if an output of spec from a source of colour src stays HDR (10-bit,
 * src's transfer), 0 if it is tone mapped to SDR (or the source is SDR). */
int tc_colour_keeps_hdr(const struct tc_output_spec *spec, const struct tc_colour *src);
/* The colour an output holds: src's for SDR, BT.709 when tone mapped,
 * BT.2020 + src's transfer and metadata when keep_hdr; full range when
 * jpeg. */
void tc_colour_for_output(const struct tc_colour *src, int keep_hdr, int jpeg,
                          struct tc_colour *out);
/* Tag an encoder context with c. */
void tc_colour_to_ctx(const struct tc_colour *c, struct AVCodecContext *ctx);
/* c's HDR metadata as x265-params (":hdr10=1:master-display=...:max-cll=
 * ...") or svtav1-params (":mastering-display=...:content-light=...")
 * text, "" without metadata. 0, or -1 if buf is too small. */
int tc_colour_x265_params(const struct tc_colour *c, char *buf, size_t size);
int tc_colour_svtav1_params(const struct tc_colour *c, char *buf, size_t size);
/* zimg's name of an HDR transfer ("smpte2084", "arib-std-b67"). */
const char *tc_colour_zimg_transfer(int transfer);

/* ------------------------------------------------------------- loudness.c */

/* The true peak loudnorm aims at: 0.5 dB under the API's -1 dBTP, the
 * room an AAC/Opus/MP3 encoder's overshoot takes. */
#define TC_LOUDNESS_TP_TARGET (-1.5)

/* What the first pass measured (EBU R128). */
struct tc_loudness {
    double i;          /* integrated loudness, LUFS */
    double lra;        /* loudness range, LU */
    double tp;         /* true peak, dBTP */
    double thresh;     /* relative gate, LUFS */
    int valid;         /* 0: silence, nothing to normalize */
};

/* Measure the audio stream ai of the input (path, or the borrowed
 * descriptor fd when path is NULL), from start_s to end_s (0 = the end),
 * decoding nothing else. 0 or a negative TC_E* code. */
int tc_loudness_measure(const char *path, int fd, int ai, double start_s, double end_s,
                        atomic_int *cancel, struct tc_loudness *out, struct tc_error *err);

/* ----------------------------------------------------------------- dims.c */

/* The output frame size for a source of coded size w x h with sample
 * aspect ratio sar_num:sar_den (0:x = square) shown rotated by rotation
 * degrees, under the spec's size rules: display aspect kept, square pixels,
 * even sides, never larger than the displayed source. Returns 0 or
 * TC_EINVAL for a nonsensical source. */
int tc_dims_compute(int w, int h, int sar_num, int sar_den, int rotation,
                    const struct tc_video_spec *vs, int *out_w, int *out_h);

/* ------------------------------------------------------------- progress.c */

/* Progress figures for input time out_time_s reached of duration_s (0 =
 * unknown) after elapsed_s of wall time. percent stays below 100 (only a
 * finished run says 100); eta_s < 0 when unknown. */
void tc_progress_compute(double out_time_s, double duration_s, double elapsed_s,
                         int64_t frames, struct tc_progress_snapshot *snap);

/* -------------------------------------------------------------- presets.c */

/* The container's libavformat muxer name ("mp4" -> "mp4", "m4a" -> "ipod"). */
const char *tc_container_muxer(const char *container);

/* ---------------------------------------------------------------- remux.c */

/* 1 if container can hold a stream of codec (a libavcodec name) by copy. */
int tc_copy_container_ok(const char *container, const char *codec);

/* The automatic remux fast path (see remux.c for the rules): 1 if the
 * input's video (audio) stream described by info may be copied into an
 * output of spec instead of being re-encoded, else 0 with why (may be
 * NULL) saying what stood in the way. Never for a "copy" codec (that is
 * not automatic), an HLS or JPEG output, or a spec with no_auto_copy. */
int tc_copy_video_fits(const struct tc_output_spec *spec, const struct tc_media_info *info,
                       char *why, size_t why_size);
int tc_copy_audio_fits(const struct tc_output_spec *spec, const struct tc_media_info *info,
                       char *why, size_t why_size);

/* Highest video bitrate (bits/s) copied for a CRF-only spec, for a frame
 * whose shorter side is short_side at fps frames/s. */
int64_t tc_copy_ceiling(int short_side, double fps);

/* ---------------------------------------------------------------- demux.c */

/* Read the next packet of the input with the input's start time taken off
 * its timestamps (offset_us, AV_TIME_BASE units), so outputs start at 0.
 * Returns 0, AVERROR_EOF or another AVERROR. */
int tc_demux_read(struct tc_input *in, int64_t offset_us, struct AVPacket *pkt);

/* The offset tc_demux_read should take off: the input's start time. */
int64_t tc_demux_start_offset(const struct tc_input *in);

/* --------------------------------------------------------------- decode.c */

/* Open a decoder for st with threads codec threads (0 = auto), frame size
 * capped at TC_MAX_PIXELS. The context is owned by the caller
 * (avcodec_free_context). */
int tc_decoder_open(const struct AVStream *st, int threads, struct AVCodecContext **out,
                    struct tc_error *err);

/* --------------------------------------------------------------- filter.c */

/* One filter chain: a buffer source fed with (references to) decoded
 * frames, a sink giving frames ready for one encoder. */
struct tc_filter;

struct tc_video_chain {
    int in_w, in_h, in_fmt;          /* the decoded frames */
    int in_tb_num, in_tb_den;        /* their time base */
    int sar_num, sar_den;
    int fr_num, fr_den;              /* frame rate hint, 0/0 if unknown */
    int rotation;                    /* 0 90 180 270 clockwise */
    int deinterlace;
    int out_w, out_h, out_fmt;
    double fps;                      /* 0: keep timestamps */
    int threads;                     /* filter graph threads, 0 = auto */
    int sharp;                       /* lanczos instead of bicubic (a ladder
                                      * rung scaled from the rung above) */
};

struct tc_audio_chain {
    int in_rate, in_fmt, in_tb_num, in_tb_den;
    const void *in_layout;           /* const AVChannelLayout * */
    int out_rate, out_fmt, out_channels;
    int frame_size;                  /* fixed encoder frame size, 0 = any */
    double loudness_lufs;            /* 0, or the target of loudnorm, */
    const struct tc_loudness *measured; /* told what the first pass found */
    int trim;                        /* a clip: keep [0, trim_end_s) of the */
    double trim_end_s;               /* timestamps (trim_end_s 0: to the end) */
};

int tc_filter_video_open(const struct tc_video_chain *c, struct tc_filter **out,
                         struct tc_error *err);

/* The run's one HDR -> SDR tone mapping (DESIGN in filter.c): decoded PQ
 * or HLG pictures in, BT.709 limited-range yuv420p out, same size and
 * timestamps. */
struct tc_tonemap_chain {
    int in_w, in_h, in_fmt, in_tb_num, in_tb_den, sar_num, sar_den;
    int transfer, matrix, range;     /* the source's (AVColor* values) */
    int threads;                     /* filter graph threads, 0 = auto */
};
int tc_filter_tonemap_open(const struct tc_tonemap_chain *c, struct tc_filter **out,
                           struct tc_error *err);
/* The filter description of the tone mapping (for the log and the
 * reference CLI command of the tests). */
void tc_filter_tonemap_desc(const struct tc_tonemap_chain *c, char *buf, size_t size);
int tc_filter_audio_open(const struct tc_audio_chain *c, struct tc_filter **out,
                         struct tc_error *err);
/* Feed a frame (a new reference is taken; the frame stays the caller's);
 * NULL signals the end. Returns 0 or an AVERROR. */
int tc_filter_push(struct tc_filter *f, struct AVFrame *frame);
/* Take one filtered frame: 0, AVERROR(EAGAIN) or AVERROR_EOF. */
int tc_filter_pull(struct tc_filter *f, struct AVFrame *frame);
/* The sink's time base and frame rate. */
void tc_filter_out_timing(const struct tc_filter *f, int *tb_num, int *tb_den, int *fr_num,
                          int *fr_den);
void tc_filter_free(struct tc_filter **f);

/* --------------------------------------------------------------- poster.c */

/* Luma and chroma statistics of one 8-bit frame, for the poster pick. */
enum { TC_HIST_Y = 64, TC_HIST_C = 32, TC_HIST_BINS = TC_HIST_Y + 2 * TC_HIST_C };
struct tc_frame_stats {
    double mean, stddev;        /* luma, 0..255 */
    double dark;                /* fraction of pixels with luma < 24 */
    float hist[TC_HIST_BINS];   /* luma, then U and V; each part sums to 1 */
};

/* Statistics of a w x h luma plane and (if u and v are not NULL) its cw x
 * ch chroma planes; 8 bits per sample, full range. */
void tc_frame_stats_compute(const uint8_t *y, int y_stride, int w, int h, const uint8_t *u,
                            const uint8_t *v, int c_stride, int cw, int ch,
                            struct tc_frame_stats *st);
/* 1 unless the frame is near-uniform (black, white, a slate, mid-fade) or
 * mostly dark. */
int tc_frame_usable(const struct tc_frame_stats *st);
/* The index of the most representative usable frame of n (nearest the mean
 * histogram of the usable ones); with none usable, the least flat one; -1
 * if n is 0. */
int tc_poster_choose(const struct tc_frame_stats *c, int n);
/* The length in seconds of the start of a video the poster is picked from
 * (duration_s 0 = unknown). */
double tc_poster_window(double duration_s);

/* The poster picker of one output (DESIGN in poster.c). */
struct tc_poster;
/* For a video of duration_s (0 = unknown) and a poster of width x height.
 * Returns 0 or AVERROR(ENOMEM). */
int tc_poster_open(double duration_s, int width, int height, struct tc_poster **out);
/* 1 if the decoded frame at time t (seconds, NAN if unknown) should be
 * scaled and offered to tc_poster_add; 0 to skip it. */
int tc_poster_want(struct tc_poster *p, double t);
/* Offer a frame of the poster's size in yuvj420p at time t (a new
 * reference is kept; f stays the caller's). Returns 1 when the pick is
 * made (no more frames are wanted), 0 to go on, or AVERROR(ENOMEM). */
int tc_poster_add(struct tc_poster *p, const struct AVFrame *f, double t);
/* The picked frame (borrowed, valid until tc_poster_free); decides now if
 * no pick was made yet. NULL if no frame was ever offered. */
const struct AVFrame *tc_poster_pick(struct tc_poster *p);
void tc_poster_free(struct tc_poster **p);

/* --------------------------------------------------------------- sprite.c */

#define TC_SPRITE_INDEX "thumbnails.vtt"

/* A sprite-sheet output being written (DESIGN in sprite.c). */
struct tc_sprite;
/* Start the folder "<path>.part" for tiles of tile_w x tile_h laid out as
 * ss says, for a video of duration_s (0 = unknown). TC_EIO/TC_ENOSPC,
 * TC_ENOMEM or TC_EINVALID_OUTPUT on failure. */
int tc_sprite_open(const char *path, const struct tc_sprite_spec *ss, int tile_w, int tile_h,
                   double duration_s, struct tc_sprite **out, struct tc_error *err);
/* 1 if the decoded frame at t (seconds, NAN if unknown) starts a tile and
 * should be scaled and given to tc_sprite_add; 0 to skip it. */
int tc_sprite_want(struct tc_sprite *s, double t);
/* Add a tile-sized yuvj420p frame shown from t (f stays the caller's);
 * writes each sheet as it fills. 0 or a negative TC_E* code. */
int tc_sprite_add(struct tc_sprite *s, const struct AVFrame *f, double t, struct tc_error *err);
/* Write the last sheet and thumbnails.vtt (cue ends capped at duration_s
 * if > 0) and rename the folder into place; res->size gets the bytes of
 * all files and res->sprite the layout written. 0 or a negative TC_E*
 * code (TC_EDECODE if no tile was made). */
int tc_sprite_finish(struct tc_sprite *s, double duration_s, struct tc_output_result *res,
                     struct tc_error *err);
/* Remove what was written, the .part folder or (after a finish) the final
 * one: a later output of the run failed. */
void tc_sprite_discard(struct tc_sprite *s);
/* Free; an unfinished .part folder is removed. NULL-safe. */
void tc_sprite_free(struct tc_sprite **s);
/* The number of cues for a duration: ceil(duration_s / interval_s); 0 if
 * the duration is unknown. */
int64_t tc_sprite_cue_count(double duration_s, double interval_s);
/* A WebVTT timestamp "HH:MM:SS.mmm" for t seconds. */
void tc_sprite_vtt_time(double t, char *buf, size_t size);

/* --------------------------------------------------------------- encode.c */

struct tc_encoder;

/* Open the video encoder of vs for frames of w x h in pix_fmt, timestamps
 * in tb. global_header: the muxer wants extradata. fixed_gop: keyframes
 * only where the caller forces them (frame pict_type I; no scene cuts). */
int tc_encoder_open_video(const struct tc_video_spec *vs, int w, int h, int pix_fmt, int tb_num,
                          int tb_den, int fr_num, int fr_den, int threads, int global_header,
                          int fixed_gop, const struct tc_colour *colour, struct tc_encoder **out,
                          struct tc_error *err);
/* Open the audio encoder of as for a source of src_rate Hz, src_channels. */
int tc_encoder_open_audio(const struct tc_audio_spec *as, int src_rate, int src_channels,
                          int global_header, struct tc_encoder **out, struct tc_error *err);
struct AVCodecContext *tc_encoder_ctx(struct tc_encoder *e);
/* Encode frame (NULL flushes); each packet made is handed to write()
 * (timestamps in the encoder's time base). Returns 0 or an AVERROR, or
 * the first error write() returned. */
int tc_encoder_send(struct tc_encoder *e, struct AVFrame *frame,
                    int (*write)(void *opaque, struct AVPacket *pkt), void *opaque);
void tc_encoder_free(struct tc_encoder **e);

/* ------------------------------------------------------------------ hls.c */

/* An "hls" output being written: its renditions (one per ladder rung, plus
 * one audio rendition when there is audio) are outputs of the run like any
 * other, each with its own hls muxer in "<path>.part/<name>/". */
struct tc_hls;

enum { TC_HLS_MAX_RENDITIONS = 5 };

/* Plan def (container "hls") for an input like info and create
 * "<def->path>.part" with a folder per rendition (the video rungs, the
 * audio; audio alone for an audio-only input). def is borrowed for the
 * handle's life. TC_EINVALID_OUTPUT (no stream for it), TC_EIO, TC_ENOMEM. */
int tc_hls_open(const struct tc_output *def, const struct tc_media_info *info,
                struct tc_hls **out, struct tc_error *err);
/* The renditions: k < tc_hls_count; each path is "<part>/<name>/index.m3u8". */
size_t tc_hls_count(const struct tc_hls *h);
const struct tc_output *tc_hls_rendition(const struct tc_hls *h, size_t k);
/* Segment duration (s): keyframes go at every multiple of it. */
double tc_hls_segment_seconds(const struct tc_hls *h);
/* 1 for fMP4 segments (init.mp4 + .m4s), 0 for MPEG-TS. */
int tc_hls_fmp4(const struct tc_hls *h);
/* Record rendition k's encoder (codec, size, rate, pixel format, channels,
 * sample rate; codec string and profile from its extradata); once it is
 * open. */
void tc_hls_describe(struct tc_hls *h, size_t k, const struct AVCodecContext *enc);
/* Take the codec string (and profile) from a packet's parameter sets if
 * the extradata had none. */
void tc_hls_note_packet(struct tc_hls *h, size_t k, const struct AVCodecContext *enc,
                        const struct AVPacket *pkt);
/* Every rendition is finished: write master.m3u8, rename the directory
 * into place, fill res (size of all files, duration_s as given, the
 * variants as master.m3u8 lists them). */
int tc_hls_finish(struct tc_hls *h, double duration_s, struct tc_output_result *res,
                  struct tc_error *err);
/* Free h; removes the unfinished directory, and the finished one too if
 * failed (a later output of the run failed). NULL is fine. */
void tc_hls_free(struct tc_hls **h, int failed);

/* ------------------------------------------------------------------ mux.c */

struct tc_mux;

/* Start writing container to "<path>.part" (file protocol only). */
int tc_mux_open(const char *container, const char *path, atomic_int *cancel,
                struct tc_mux **out, struct tc_error *err);
/* Segments of an "hls" mux (opened with path = the rendition's index.m3u8,
 * segments beside it): target duration, fMP4 (init.mp4 + .m4s) or MPEG-TS;
 * call before tc_mux_write_header. */
void tc_mux_set_hls(struct tc_mux *m, double seconds, int fmp4);
/* 1 if the muxer wants codec extradata in the stream header. */
int tc_mux_global_header(const struct tc_mux *m);
/* Add a stream for an encoder's output or for a copy of ist. Returns the
 * new stream's index or an AVERROR. */
/* Streams per output whose timestamps tc_mux_write keeps moving forward
 * (a video and an audio; more are written as given). */
enum { TC_MUX_MAX_STREAMS = 4 };
int tc_mux_add_encoded(struct tc_mux *m, const struct AVCodecContext *enc, const char *container);
/* Put HDR metadata on stream index (Matroska/WebM Colour, MP4 mdcv/clli
 * where the muxer writes them). 0 or AVERROR(ENOMEM). */
int tc_mux_set_hdr(struct tc_mux *m, int index, const struct tc_colour *c);
int tc_mux_add_copy(struct tc_mux *m, const struct AVStream *ist);
int tc_mux_write_header(struct tc_mux *m, struct tc_error *err);
/* Write pkt (timestamps in tb_num/tb_den) to stream index; takes pkt's data. */
int tc_mux_write(struct tc_mux *m, int index, struct AVPacket *pkt, int tb_num, int tb_den);
/* Trailer, close, rename "<path>.part" to path; size and duration out. On
 * failure the part file is removed. */
int tc_mux_finish(struct tc_mux *m, int64_t *size, double *duration_s, struct tc_error *err);
/* Close (if open) and remove the part file; frees *m. */
void tc_mux_free(struct tc_mux **m);

#endif
