/*
 * tc.h - the one public header of vidq's transcoding library.
 *
 * What it promises:
 *   - probe a media file (tc_probe), parse and validate output specs and
 *     presets (tc_spec_*, tc_preset_*), and run one input to one or more
 *     outputs in a single demux+decode pass (tc_run).
 *   - no libav type appears here: callers (svc/, the CLI, tests) never
 *     include libav headers. JSON crosses this boundary as jansson json_t.
 *   - never aborts or exits: every failure is a negative TC_E* code plus a
 *     human message in a struct tc_error.
 *   - input is untrusted: it is read from a local file only (a path, or a
 *     descriptor the caller opened: tc_probe_fd, tc_run_params.input_fd), playlist
 *     and script demuxers are refused, frame size and stream count are capped.
 *   - an output is written aside ("<path>.part") and renamed into place only
 *     when it is complete; on failure or cancel nothing of it is left.
 *
 * Threading: every function may be called from any thread. tc_run() blocks
 * the calling thread until the run ends; several runs may go on at once in
 * one process. struct tc_progress is written by the running tc_run() and
 * read by anyone, from any thread or process (it holds no pointers, so it
 * can live in shared memory); the cancel flag is set by anyone.
 */
#ifndef VIDQ_TC_H
#define VIDQ_TC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/* Error codes. Each has a stable snake_case name (tc_errname), the same
 * word the HTTP API puts in error.code. */
enum {
    TC_OK = 0,
    TC_EINVAL = -1,             /* bad_request: a bad argument */
    TC_EINVALID_PRESET = -2,    /* invalid_preset: no such preset */
    TC_EINVALID_OUTPUT = -3,    /* invalid_output: bad output spec */
    TC_EUNSUPPORTED = -4,       /* unsupported_media: not decodable media */
    TC_ECANCELED = -5,          /* canceled */
    TC_EIO = -6,                /* io_error: read/write failure */
    TC_ENOSPC = -7,             /* no_space: disk full (an upload: 507 insufficient_storage) */
    TC_ENOMEM = -8,             /* out_of_memory */
    TC_EDECODE = -9,            /* decode_failed: input broke mid-way */
    TC_EENCODE = -10,           /* encode_failed */
    TC_ENOT_REMUXABLE = -11,    /* not_remuxable: stream copy impossible */
    TC_EINTERNAL = -12,         /* internal_error */
};

/* An error for the caller: code (a TC_E* value) and a human sentence that
 * names the cause, e.g. "no decodable audio or video stream". */
struct tc_error {
    int code;
    char message[256];
};

/* The stable snake_case name of an error code ("unsupported_media").
 * Never NULL; unknown codes give "internal_error". */
const char *tc_errname(int code);

/* A generic human sentence for an error code. Never NULL. */
const char *tc_strerror(int code);

/* Fill err (may be NULL) with code and a printf-style message; returns
 * code so callers can write `return tc_error_set(err, TC_EIO, "...")`. */
int tc_error_set(struct tc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ----------------------------------------------------------------- probe */

struct tc_video_info {
    char codec[32];        /* "h264", "hevc", ... */
    char profile[32];      /* "High", "Main 10", "" if unknown */
    char pix_fmt[32];      /* "yuv420p", "yuv420p10le", ... */
    int width, height;     /* coded size, before rotation */
    int display_width;     /* after rotation and sample aspect ratio */
    int display_height;
    int rotation;          /* display rotation in degrees: 0, 90, 180, 270 */
    double fps;            /* average frame rate, 0 if unknown */
    int bit_depth;         /* 8, 10, ... */
    int interlaced;        /* 1 if field order says interlaced */
    int level;             /* codec level, -1 if unknown */
    int64_t bit_rate;      /* bits/s, 0 if unknown */
};

struct tc_audio_info {
    char codec[32];
    int channels;
    int sample_rate;
    int64_t bit_rate;      /* bits/s, 0 if unknown */
};

struct tc_media_info {
    char format[64];       /* demuxer short name: "mov,mp4,m4a,3gp,3g2,mj2" */
    double duration_s;     /* 0 if unknown */
    int64_t size;          /* file size in bytes */
    int has_video;
    int has_audio;
    struct tc_video_info video;   /* valid if has_video */
    struct tc_audio_info audio;   /* valid if has_audio */
};

/* Probe a local file. Fails with TC_EUNSUPPORTED (message says why) when it
 * is not media we can decode, or a refused format (playlists, scripts).
 * Returns 0 or a negative TC_E* code. */
int tc_probe(const char *path, struct tc_media_info *info,
             struct tc_error *err);

/* tc_probe of an already-open descriptor (a regular file opened for
 * reading). fd is borrowed: never closed, its file offset never moved (the
 * library reads it with pread at its own offset), and nothing is opened by
 * path, so a sandboxed process that may not open files can call it.
 * TC_EINVAL if fd < 0. */
int tc_probe_fd(int fd, struct tc_media_info *info, struct tc_error *err);

/* Run libav*'s once-per-process initialisation now: every codec's static
 * data (its tables, the external libraries' capability queries), the
 * codec, parser, format and filter lists. A process that forks children
 * for media work calls it once, so each child inherits the result instead
 * of redoing it. Thread-safe (libav's own once-guards); idempotent. */
void tc_preload(void);

/* The API's "input" object for info; filename may be NULL (omitted).
 * Returns a new reference, NULL only on out-of-memory. */
json_t *tc_media_info_to_json(const struct tc_media_info *info,
                              const char *filename);

/* ------------------------------------------------------- specs, presets */

enum { TC_NAME_MAX = 64 };

struct tc_video_spec {
    char codec[16];        /* "h264" "hevc" "vp9" "av1" "copy" */
    int max_height;        /* cap on the shorter displayed side; 0 = none */
    int width, height;     /* explicit box; 0 = derived */
    int crf;               /* -1 = encoder default / use bitrate */
    int64_t bitrate;       /* bits/s; 0 = none */
    double fps;            /* 0 = keep the source rate */
    char speed[16];        /* x264-style preset name, "" = default */
    char hdr[8];           /* an HDR (PQ or HLG) source: "tonemap" to SDR
                            * BT.709, "keep" 10-bit HDR (hevc, av1, vp9
                            * only), "" or "auto": keep where the codec
                            * can, else tone map. SDR sources: no effect */
};

struct tc_audio_spec {
    char codec[16];        /* "aac" "opus" "mp3" "copy" */
    int64_t bitrate;       /* bits/s; 0 = codec default */
    int channels;          /* 0 = source, capped at 2 */
    int sample_rate;       /* 0 = codec's choice near the source */
    double loudness_lufs;  /* integrated loudness target per EBU R128,
                            * -70..-5 (true peak then at most -1 dBTP);
                            * 0 = the level is left alone */
};

/* A "sprite" output's layout: a tile every interval_s seconds, columns x
 * rows tiles a sheet. The tile size is the video spec's (width, default 160). */
struct tc_sprite_spec {
    double interval_s;     /* 0.1 .. 3600 */
    int columns, rows;     /* 1 .. 32 each */
};

enum {
    TC_SPRITE_MAX_TILES = 10000,  /* tiles (cues) of one sprite output */
    TC_SPRITE_MAX_SIDE = 4096,    /* pixels, each side of a sheet */
};

/* One output: what to produce. Plain data, safe to copy. */
struct tc_output_spec {
    char name[TC_NAME_MAX];  /* URL-safe: [A-Za-z0-9_-]{1,63} */
    char preset[32];         /* the preset it came from, "" if custom */
    char container[8];       /* "mp4" "webm" "mkv" "hls" "m4a" "mp3" "ogg" "jpg" "sprite" */
    int has_video;           /* 0: video dropped (spec said null) */
    int has_audio;           /* 0: audio dropped */
    int threads;             /* codec thread budget asked for the run
                              * ("threads", 1..64); 0 = the caller's (see
                              * tc_run_params.threads) */
    int no_auto_copy;        /* 1: never copy a stream the spec does not say
                              * "copy" for ("auto_copy": false); 0: copy an
                              * input stream that already fits (remux.c) */
    struct tc_video_spec video;
    struct tc_audio_spec audio;
    /* "hls" only: "ts" or "fmp4" ("" = ts, fmp4 for HEVC), and the segment
     * duration in seconds, 2..10 (0 = 4, shorter for clips under 12 s). */
    char segment_format[8];
    double segment_seconds;
    struct tc_sprite_spec sprite;  /* container "sprite" only, else zero */
    /* "jpg" only: the poster is the frame shown at at_s seconds (has_at_s
     * 1); else (0) the automatic pick of poster.c. */
    int has_at_s;
    double at_s;
    /* The part of the input this output holds ("clip"): from clip_start_s
     * (0 = the start) to clip_end_s (0 = the end), timestamps from 0.
     * Every output of one run has the same clip. */
    double clip_start_s, clip_end_s;
};

/* Parse one output spec object of the API. On failure returns
 * TC_EINVALID_OUTPUT and err->message names the field and why. */
int tc_spec_parse(const json_t *obj, struct tc_output_spec *spec,
                  struct tc_error *err);

/* Parse a "clip" object {"start_s": f, "end_s": f} (either may be absent
 * or null): *start_s (0 if absent) and *end_s (0 if absent). On failure
 * TC_EINVALID_OUTPUT with the field named. */
int tc_clip_parse(const json_t *obj, double *start_s, double *end_s, struct tc_error *err);

/* Check a clip against an input: TC_EINVAL ("bad_request") when it starts
 * at or after the input's end or ends after it; 0 when the duration is
 * unknown. */
int tc_clip_check(double start_s, double end_s, const struct tc_media_info *info,
                  struct tc_error *err);

/* The spec as the API's JSON object. New reference, NULL on OOM. */
json_t *tc_spec_to_json(const struct tc_output_spec *spec);

/* Fill spec from the named preset (name becomes the output name).
 * TC_EINVALID_PRESET if there is no such preset. */
int tc_preset_find(const char *preset, struct tc_output_spec *spec,
                   struct tc_error *err);

/* Number of presets and the i-th one's name (NULL past the end). */
size_t tc_preset_count(void);
const char *tc_preset_name(size_t i);

/* A one-line human description of the i-th preset (NULL past the end). */
const char *tc_preset_description(size_t i);

/* {"presets":[{"name":..,"description":..,"spec":{..}}, ..]}. New ref. */
json_t *tc_presets_to_json(void);

/* The MIME type of a container's main file ("video/mp4",
 * "application/vnd.apple.mpegurl" for hls). Never NULL. */
const char *tc_container_mime(const char *container);

/* The MIME type of an output file by its extension (a folder output's
 * playlist, segment or sheet too), "application/octet-stream" for any
 * other. Never NULL. */
const char *tc_file_mime(const char *path);

/* The file extension of a container, without the dot ("mp4"). For "hls"
 * the output is a directory and this gives "m3u8" (its master playlist). */
const char *tc_container_ext(const char *container);

/* 1 if a container's output is a folder of files ("hls", "sprite"), 0 if
 * it is one file. */
int tc_container_is_folder(const char *container);

/* The file a folder output is entered by: "master.m3u8" for hls,
 * "thumbnails.vtt" for sprite; NULL for a one-file container. */
const char *tc_container_index(const char *container);

/* Check that spec can be made from an input like info (for example
 * remux-mp4 of a codec MP4 cannot hold; video output from audio-only input
 * drops the video). Returns 0, TC_ENOT_REMUXABLE or TC_EINVALID_OUTPUT. */
int tc_spec_check_input(const struct tc_output_spec *spec,
                        const struct tc_media_info *info,
                        struct tc_error *err);

/* -------------------------------------------------------------- progress */

/*
 * Progress of a run, written only by tc_run() and read by anyone.
 * A seqlock: the writer makes seq odd, stores the fields, makes it even;
 * a reader retries while seq is odd or changed. Plain atomics, no pointers,
 * so it may live in memory shared between processes (mmap MAP_SHARED).
 */
struct tc_progress {
    _Atomic uint32_t seq;
    _Atomic int64_t frames;       /* video frames decoded */
    _Atomic double out_time_s;    /* input time reached */
    _Atomic double percent;       /* 0..100, never down, 100 only on success */
    _Atomic double fps;           /* decoded frames per second of wall time */
    _Atomic double speed;         /* out_time / wall time */
    _Atomic double eta_s;         /* seconds left; < 0 when unknown */
};

/* A consistent copy of a tc_progress. */
struct tc_progress_snapshot {
    int64_t frames;
    double out_time_s, percent, fps, speed, eta_s;
};

/* Zero a progress struct (percent 0, eta unknown). */
void tc_progress_init(struct tc_progress *p);

/* Read a consistent snapshot; never blocks for long (the writer holds the
 * odd sequence for a handful of stores only). */
void tc_progress_read(const struct tc_progress *p,
                      struct tc_progress_snapshot *out);

/* Publish new values: used by tc_run(), exported for tests and for the
 * service's worker that mirrors progress. Keeps percent from going down. */
void tc_progress_write(struct tc_progress *p,
                       const struct tc_progress_snapshot *in);

/* ------------------------------------------------------------------- run */

/* Log levels, as in syslog. */
enum { TC_LOG_ERROR = 3, TC_LOG_WARNING = 4, TC_LOG_INFO = 6, TC_LOG_DEBUG = 7 };

/* Receives the library's and libav's log lines (without a trailing '\n').
 * Called from the thread running tc_run (libav may also call it from its
 * own worker threads), so it must be thread-safe. */
typedef void (*tc_log_fn)(void *opaque, int level, const char *msg);

/* Route all library and libav logging to fn (NULL: drop below warnings to
 * stderr). Process-wide; call once at start-up before any run. */
void tc_set_log(tc_log_fn fn, void *opaque, int max_level);

/* Called after each progress update (at least 4 times a second and at
 * least every 1%) on the thread running tc_run. May be NULL. */
typedef void (*tc_progress_fn)(void *opaque,
                               const struct tc_progress_snapshot *snap);

/* One output of a run: its spec and where it goes. path is the final file
 * (for a folder container, "hls" or "sprite", the final directory holding
 * its files; see tc_container_index). */
struct tc_output {
    struct tc_output_spec spec;
    const char *path;              /* borrowed */
};

enum { TC_HLS_MAX_VARIANTS = 4 };

/* One variant of a finished "hls" output, as its master.m3u8 says it and
 * its encoders made it. */
struct tc_hls_variant {
    char name[16];              /* its folder: "720p", or "audio" (audio-only) */
    char uri[32];               /* its media playlist, relative to the master:
                                 * "720p/index.m3u8" */
    char codecs[100];           /* CODECS: "avc1.64001F,mp4a.40.2" */
    int64_t bandwidth;          /* BANDWIDTH: peak segment bit rate, its
                                 * audio included, bits/s */
    int64_t average_bandwidth;  /* AVERAGE-BANDWIDTH, likewise */
    int has_video, has_audio;
    /* The encoder's parameters (codec, profile, pix_fmt, size, fps) and
     * bit_rate = the average measured over the segments. */
    struct tc_video_info video;   /* valid if has_video */
    struct tc_audio_info audio;   /* valid if has_audio: the audio rendition */
};

/* What a finished "sprite" output holds. */
struct tc_sprite_result {
    int tile_width, tile_height;
    int columns, rows;          /* tiles a full sheet (the spec's, reduced
                                 * to fit TC_SPRITE_MAX_SIDE) */
    int sheet_width, sheet_height;  /* the first sheet, sheet-0000.jpg (the
                                     * size of every full sheet) */
    int sheets;                 /* sheet-0000.jpg .. sheet-<sheets-1>.jpg */
    int64_t tiles;              /* = the cues of thumbnails.vtt */
    double interval_s;
};

/* What became of one output. Plain data, safe to copy. */
struct tc_output_result {
    int64_t size;                  /* bytes (for a folder: all its files) */
    double duration_s;
    int video_copied;              /* 1 if the video stream was copied */
    int audio_copied;              /* 1 if the audio stream was copied */
    /* "hls" only: the variants of master.m3u8 in its order (highest first). */
    int n_variants;
    struct tc_hls_variant variants[TC_HLS_MAX_VARIANTS];
    struct tc_sprite_result sprite;   /* "sprite" only, else zero */
};

/* What the API says of a finished output: {"size": n, "duration_s": f,
 * "video": {<as in the input object>, "copied": b} | null,
 * "audio": {..., "copied": b} | null}. A file output's streams are
 * described by probing the file at out->path ("copied": true when the
 * stream was copied from the input instead of re-encoded). A folder is
 * described by res alone: "hls" gives the top variant's video and the
 * audio rendition's audio, plus "renditions": [{"name", "uri", "bandwidth",
 * "average_bandwidth", "codecs", "video", "audio"}] (uri relative to the
 * folder); "sprite" gives video {"codec": "mjpeg", the first sheet's
 * size}, audio null, plus "sprite": {"tile_width", "tile_height",
 * "columns", "rows", "sheets", "tiles", "interval_s"}. New reference,
 * NULL only on out-of-memory. */
json_t *tc_output_result_to_json(const struct tc_output *out,
                                 const struct tc_output_result *res);

/* res as JSON, for handing it to another process (the service's worker
 * child); tc_output_result_unpack reads it back. New reference, NULL on
 * out-of-memory. */
json_t *tc_output_result_pack(const struct tc_output_result *res);

/* Fill res from what tc_output_result_pack made. Strings are cut to their
 * fields, counts capped. Returns 0, or TC_EINVAL if j is not such an
 * object (res is then zeroed). */
int tc_output_result_unpack(json_t *j, struct tc_output_result *res);

struct tc_run_params {
    /* The input: input_path if it is not NULL (opened here), else input_fd.
     * input_fd (used only when input_path is NULL) is an open regular file,
     * borrowed as by tc_probe_fd: never closed, offset untouched, nothing
     * opened by path. A zero-initialised struct with input_path set reads
     * the path; with neither, fd 0 would be read: set input_fd = -1. */
    const char *input_path;        /* borrowed */
    int input_fd;
    const struct tc_output *outputs;   /* borrowed, n_outputs of them */
    size_t n_outputs;
    int threads;                   /* codec thread budget of the run: the
                                    * video decoder gets half, the video
                                    * encoders (and their filter graphs)
                                    * share the rest, audio codecs 1 each;
                                    * 0 = every codec picks (all cores). An
                                    * output spec's "threads" overrides it
                                    * (the largest of them). */
    atomic_int *cancel;            /* optional; set non-zero to stop */
    struct tc_progress *progress;  /* optional; written during the run */
    tc_progress_fn on_progress;    /* optional */
    void *opaque;                  /* passed to on_progress */
};

/* Run the transcode: one demux and decode of the input, every output fed
 * from the same decoded frames. Blocks until done. On success every output
 * exists at its path, results (if not NULL, n_outputs of them) are filled,
 * and progress->percent is 100. On failure or cancel (TC_ECANCELED, within
 * 1 s of the flag being set) no output file or .part file is left.
 * Returns 0 or a negative TC_E* code with err filled. */
int tc_run(const struct tc_run_params *params,
           struct tc_output_result *results, struct tc_error *err);

/* The library's version string ("vidq-transcode 0.1.0 (libavcodec 59.x)"). */
const char *tc_version(void);

#ifdef __cplusplus
}
#endif

#endif /* VIDQ_TC_H */
