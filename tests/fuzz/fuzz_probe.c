/* fuzz_probe: arbitrary bytes as an upload, with the service's exact
 * options: a memfd (a regular file, as an upload is) read through
 * tc_input_open_fd (our AVIOContext, the format allow-list, the caps,
 * stream info), tc_probe_input (what the upload's probe answers), then a
 * short decode as a job starts one: the chosen streams' decoders opened by
 * tc_decoder_open (max_pixels, one thread here), at most 64 packets read
 * with tc_demux_read and decoded, the decoders flushed.
 * libav itself is not instrumented (Debian's build), so coverage feedback
 * comes from our code only; crashes, hangs and leaks anywhere are caught.
 * Threading: one thread; the library's log is dropped. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include <transcode/tc.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum { MAX_PACKETS = 64 };

static void drop_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    (void)level;
    (void)msg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tc_set_log(drop_log, NULL, TC_LOG_ERROR);
    return 0;
}

static void drain(AVCodecContext *dec, AVFrame *frame)
{
    while (avcodec_receive_frame(dec, frame) >= 0)
        av_frame_unref(frame);
}

static void decode_some(struct tc_input *in, int vi, int ai)
{
    AVCodecContext *dec[2] = {NULL, NULL};
    int index[2] = {vi, ai};
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    struct tc_error err;
    if (!pkt || !frame)
        goto out;
    for (int k = 0; k < 2; k++)
        if (index[k] >= 0 && tc_decoder_open(in->fmt->streams[index[k]], 1, &dec[k], &err) < 0)
            dec[k] = NULL;
    int64_t offset = tc_demux_start_offset(in);
    for (int n = 0; n < MAX_PACKETS; n++) {
        if (tc_demux_read(in, offset, pkt) < 0)
            break;
        for (int k = 0; k < 2; k++) {
            if (dec[k] && pkt->stream_index == index[k]) {
                /* A refused packet is skipped, as the pipeline's errors
                 * are judged there; what matters here is that nothing
                 * breaks. */
                avcodec_send_packet(dec[k], pkt);
                drain(dec[k], frame);
            }
        }
        av_packet_unref(pkt);
    }
    for (int k = 0; k < 2; k++) {
        if (dec[k]) {
            avcodec_send_packet(dec[k], NULL);
            drain(dec[k], frame);
        }
    }
out:
    avcodec_free_context(&dec[0]);
    avcodec_free_context(&dec[1]);
    av_frame_free(&frame);
    av_packet_free(&pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tc_input *in = NULL;
    struct tc_media_info info;
    struct tc_error err;
    int vi = -1, ai = -1;
    int fd = memfd_create("fuzz_probe", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size)
        goto out;
    memset(&err, 0, sizeof(err));
    int r = tc_input_open_fd(fd, NULL, &in, &err);
    if (r < 0) {
        if (!err.message[0] || in)
            abort(); /* every refusal says why and leaves nothing open */
        goto out;
    }
    if (tc_probe_input(in, &info, &vi, &ai, &err) == 0) {
        if ((vi < 0) == info.has_video || (ai < 0) == info.has_audio)
            abort();
        if (info.has_video && (info.video.width <= 0 || info.video.height <= 0 ||
                               (int64_t)info.video.width * info.video.height > TC_MAX_PIXELS))
            abort();
        json_t *j = tc_media_info_to_json(&info, "upload.bin");
        json_decref(j);
        decode_some(in, vi, ai);
    }
out:
    tc_input_close(&in);
    close(fd);
    return 0;
}
