/* input_guard.c - open an untrusted upload so that nothing but its own
 * bytes can be read.
 *
 * The input is a descriptor: opened here from a path (regular files only),
 * or handed over already open by the caller (tc_input_open_fd: the
 * sandboxed worker child, which may open nothing by path). Its bytes reach
 * libavformat through our own AVIOContext over that descriptor, read with
 * pread at our own offset, so no URL protocol is involved for the input
 * itself and a caller's descriptor keeps its file offset. Nested opens (a
 * playlist naming another URL) are limited to the "file" protocol by
 * protocol_whitelist and, more to the point, can never happen: the
 * detected format must be on an allow-list of ordinary single-file
 * containers, checked BEFORE the demuxer's read_header runs. Playlists,
 * scripts, devices and image-sequence patterns are refused by name too
 * (belt and braces).
 *
 * Threading: any thread; the cancel flag is read from libav's read path. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "transcode/tc.h"
#include "internal.h"

enum { IO_BUF = 64 * 1024 };

/* The format_whitelist: demuxers an upload may be read with (libavformat
 * short names), the containers people upload video and audio in. Every
 * other demuxer is refused before its header parser runs (415
 * unsupported_media): that is most of libavformat's ~300, among them the
 * rarely used ones whose parsers keep getting CVEs (dxa, westwood_vqa,
 * caf, dhav...). Detection still shows the first bytes to every demuxer's
 * probe function (signature checks; the public API cannot narrow it).
 * Adding one here widens what hostile bytes can reach: say why in the
 * commit. */
static const char *const allowed[] = {
    /* video containers */
    "mov,mp4,m4a,3gp,3g2,mj2", /* MP4, MOV, M4A, 3GP */
    "matroska,webm",           /* MKV, WebM */
    "avi", "flv", "asf",       /* AVI, Flash video, WMV/WMA */
    "mpegts", "mpeg",          /* MPEG-TS (.ts, .m2ts), MPEG-PS (.mpg, .vob) */
    "ogg",                     /* Ogg: Theora, Vorbis, Opus */
    "mxf",                     /* broadcast and camera files */
    "ivf",                     /* raw VP8/VP9/AV1 */
    "gif",                     /* animated GIF to video */
    /* raw streams */
    "h264", "hevc", "yuv4mpegpipe",
    /* audio files */
    "mp3", "aac", "wav", "aiff", "flac",
};
/* Never, whatever the allow-list says: they open other URLs or files, run
 * scripts, or read devices. */
static const char *const denied[] = {
    "hls", "applehttp", "concat", "ffconcat", "dash", "webm_dash_manifest", "hds", "smoothstreaming",
    "image2", "image2pipe", "lavfi", "sdp", "rtsp", "rtp", "sap", "tty", "ffmetadata",
    "imf", "mpjpeg", "data", "bin", "libcdio", "v4l2", "alsa", "fbdev", "x11grab", "pulse",
    "oss", "jack", "kmsgrab", "openal", "lavfi", "srtp", "tedcaptions", "subviewer", "http",
};

static int is_denied(const char *name)
{
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
        if (strcmp(name, denied[i]) == 0)
            return 1;
    return 0;
}

int tc_input_format_allowed(const char *name)
{
    if (!name || is_denied(name))
        return 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcmp(name, allowed[i]) == 0)
            return 1;
    return 0;
}

struct fd_io {
    int fd;
    int owned;        /* 1: opened here, closed by tc_input_close */
    int64_t pos;      /* our offset: pread never moves the descriptor's */
    int64_t size;
    atomic_int *cancel;
};

static int fd_read(void *opaque, uint8_t *buf, int n)
{
    struct fd_io *io = opaque;
    if (io->cancel && atomic_load(io->cancel))
        return AVERROR_EXIT;
    for (;;) {
        ssize_t r = pread(io->fd, buf, (size_t)n, (off_t)io->pos);
        if (r > 0) {
            io->pos += r;
            return (int)r;
        }
        if (r == 0)
            return AVERROR_EOF;
        if (errno != EINTR)
            return AVERROR(errno);
    }
}

static int64_t fd_seek(void *opaque, int64_t offset, int whence)
{
    struct fd_io *io = opaque;
    int64_t to;
    if (whence & AVSEEK_SIZE)
        return io->size;
    /* Offsets come from the file's own fields: no overflow on the sum. */
    switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: to = offset; break;
    case SEEK_CUR:
        if (__builtin_add_overflow(io->pos, offset, &to))
            return AVERROR(EINVAL);
        break;
    case SEEK_END:
        if (__builtin_add_overflow(io->size, offset, &to))
            return AVERROR(EINVAL);
        break;
    default: return AVERROR(EINVAL);
    }
    if (to < 0)
        return AVERROR(EINVAL);
    io->pos = to;
    return to;
}

static int interrupt_cb(void *opaque)
{
    atomic_int *cancel = opaque;
    return cancel && atomic_load(cancel);
}

static int refuse_io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                          AVDictionary **options)
{
    (void)flags;
    (void)options;
    *pb = NULL;
    av_log(s, AV_LOG_WARNING, "refused to open '%.200s' named by the input\n", url ? url : "");
    return AVERROR(EPERM);
}

/* Refuse a video stream whose frame is over the caps. after_info: stream
 * info was read, so a decodable video stream must also have a pixel format
 * (none: every frame tried failed to decode, among them a frame over the
 * caps that the decoder refused to allocate). */
static int check_dims(const AVFormatContext *fmt, int after_info, struct tc_error *err)
{
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        const AVCodecParameters *par = st->codecpar;
        if (par->codec_type != AVMEDIA_TYPE_VIDEO)
            continue;
        if (par->width < 0 || par->height < 0 || par->width > TC_MAX_SIDE ||
            par->height > TC_MAX_SIDE || (int64_t)par->width * par->height > TC_MAX_PIXELS)
            return tc_error_set(err, TC_EUNSUPPORTED,
                                "video frame %dx%d is larger than allowed (at most %d pixels a "
                                "side and %d megapixels)",
                                par->width, par->height, TC_MAX_SIDE, TC_MAX_PIXELS / 1000000);
        if (after_info && par->format < 0 && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC) &&
            avcodec_find_decoder(par->codec_id))
            return tc_error_set(err, TC_EUNSUPPORTED,
                                "the video stream has no decodable frame (damaged, stored in "
                                "another file, or larger than %d megapixels)",
                                TC_MAX_PIXELS / 1000000);
    }
    return 0;
}

/* The parts we own besides the format context. */
struct guard {
    struct tc_input in;      /* first: tc_input_close casts back */
    struct fd_io io;
    AVIOContext *pb;
};

/* Open the input read through fd. owned: fd was opened here and is closed
 * on failure or by tc_input_close; else it stays the caller's, untouched. */
static int input_open(int fd, int owned, atomic_int *cancel, struct tc_input **out,
                      struct tc_error *err)
{
    struct guard *g = NULL;
    AVFormatContext *fmt = NULL;
    const AVInputFormat *ifmt = NULL;
    AVDictionary *opts = NULL;
    unsigned char *buf = NULL;
    struct stat stt;
    AVDictionary **stream_opts = NULL;
    unsigned n_stream_opts = 0;
    int ret = TC_EINTERNAL, r;

    *out = NULL;
    g = av_mallocz(sizeof(*g));
    if (!g) {
        if (owned)
            close(fd);
        return tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
    }
    g->io.fd = fd;
    g->io.owned = owned;
    if (fstat(g->io.fd, &stt) != 0) {
        ret = tc_error_set(err, TC_EIO, "cannot read the input: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(stt.st_mode)) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input is not a regular file");
        goto out;
    }
    if (stt.st_size == 0) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input file is empty");
        goto out;
    }
    g->io.size = stt.st_size;
    g->io.cancel = cancel;
    g->in.size = stt.st_size;

    buf = av_malloc(IO_BUF);
    if (!buf) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    g->pb = avio_alloc_context(buf, IO_BUF, 0, &g->io, fd_read, NULL, fd_seek);
    if (!g->pb) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    buf = NULL; /* owned by pb */

    /* Detect the format from the bytes alone (no file name hint), then
     * judge it before any demuxer code reads a header. */
    r = av_probe_input_buffer2(g->pb, &ifmt, "", NULL, 0, 0);
    if (r < 0 || !ifmt) {
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_set(err, TC_EUNSUPPORTED,
                                               "not a recognised audio or video file");
        goto out;
    }
    if (!tc_input_format_allowed(ifmt->name)) {
        ret = tc_error_set(err, TC_EUNSUPPORTED,
                           is_denied(ifmt->name)
                               ? "input format '%.40s' is refused (playlists, scripts and "
                                 "non-media formats are not accepted)"
                               : "input format '%.40s' is not supported (accepted: MP4/MOV, "
                                 "Matroska/WebM, AVI, FLV, WMV, MPEG-TS/PS, Ogg, MXF, IVF, GIF, "
                                 "raw H.264/HEVC/Y4M, MP3, AAC, WAV, AIFF, FLAC)",
                           ifmt->name);
        goto out;
    }

    fmt = avformat_alloc_context();
    if (!fmt) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    fmt->pb = g->pb;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt->interrupt_callback.callback = interrupt_cb;
    fmt->interrupt_callback.opaque = cancel;
    /* No demuxer may open anything besides our descriptor: a MOV data
     * reference, a nested playlist or an external track would come through
     * here, and is refused whatever the protocol. */
    fmt->io_open = refuse_io_open;
    av_dict_set(&opts, "protocol_whitelist", "file", 0); /* the floor, should io_open be bypassed */
    av_dict_set(&opts, "format_whitelist", ifmt->name, 0);
    av_dict_set_int(&opts, "max_streams", TC_MAX_STREAMS, 0);
    av_dict_set(&opts, "enable_drefs", "0", 0);      /* mov: external data references off */
    av_dict_set(&opts, "use_absolute_path", "0", 0); /* mov: never follow an absolute dref */
    r = avformat_open_input(&fmt, "", ifmt, &opts);
    if (r < 0) {
        /* avformat_open_input freed fmt (not our pb: custom IO). */
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_av(err, TC_EUNSUPPORTED, r, "cannot read the input");
        goto out;
    }
    if (fmt->nb_streams == 0 || fmt->nb_streams > TC_MAX_STREAMS) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input has %u streams (1 to %d accepted)",
                           fmt->nb_streams, TC_MAX_STREAMS);
        goto out;
    }
    /* What the container's header declares is judged before any decoder
     * runs: a few bytes may declare a 30000x30000 frame. */
    if ((ret = check_dims(fmt, 0, err)) < 0)
        goto out;
    /* Stream info decodes a few frames: with the same caps as the real
     * decoders (a frame larger than the header said is refused when its
     * buffer is asked for) and one thread (frame threads multiply the
     * frames held). */
    stream_opts = av_calloc(fmt->nb_streams, sizeof(*stream_opts));
    if (!stream_opts) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    n_stream_opts = fmt->nb_streams;
    for (unsigned i = 0; i < n_stream_opts; i++) {
        av_dict_set_int(&stream_opts[i], "max_pixels", TC_MAX_PIXELS, 0);
        av_dict_set_int(&stream_opts[i], "threads", 1, 0);
    }
    r = avformat_find_stream_info(fmt, stream_opts);
    if (r < 0) {
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_av(err, TC_EUNSUPPORTED, r, "cannot read stream info");
        goto out;
    }
    if (fmt->nb_streams > TC_MAX_STREAMS) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input has more than %d streams",
                           TC_MAX_STREAMS);
        goto out;
    }
    if ((ret = check_dims(fmt, 1, err)) < 0)
        goto out;
    g->in.fmt = fmt;
    fmt = NULL;
    *out = &g->in;
    g = NULL;
    ret = 0;
out:
    for (unsigned i = 0; i < n_stream_opts; i++)
        av_dict_free(&stream_opts[i]);
    av_free(stream_opts);
    av_dict_free(&opts);
    avformat_close_input(&fmt);
    av_free(buf);
    if (g) {
        if (g->pb)
            av_freep(&g->pb->buffer);
        avio_context_free(&g->pb);
        if (g->io.owned)
            close(g->io.fd);
        av_free(g);
    }
    return ret;
}

int tc_input_open(const char *path, atomic_int *cancel, struct tc_input **out,
                  struct tc_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const char *base = strrchr(path, '/');
        return tc_error_set(err, TC_EIO, "cannot open input '%.200s': %s", base ? base + 1 : path,
                            strerror(errno));
    }
    return input_open(fd, 1, cancel, out, err);
}

int tc_input_open_fd(int fd, atomic_int *cancel, struct tc_input **out, struct tc_error *err)
{
    *out = NULL;
    if (fd < 0)
        return tc_error_set(err, TC_EINVAL, "no input descriptor");
    return input_open(fd, 0, cancel, out, err);
}

void tc_input_close(struct tc_input **in)
{
    if (!in || !*in)
        return;
    struct guard *g = (struct guard *)*in;
    avformat_close_input(&g->in.fmt);
    if (g->pb)
        av_freep(&g->pb->buffer);
    avio_context_free(&g->pb);
    if (g->io.owned)
        close(g->io.fd);
    av_free(g);
    *in = NULL;
}
