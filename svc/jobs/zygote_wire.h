/*
 * zygote_wire.h - what the server and the zygote say to each other over
 * their socket, and the numbers both sides go by (see zygote.c, DESIGN).
 * Private to zygote.c (the server's side) and zygote_proc.c (the
 * zygote's).
 */
#ifndef VIDQ_ZYGOTE_WIRE_H
#define VIDQ_ZYGOTE_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A request's argument bytes at most; the zygote's end of its socket. */
enum { ARGS_MAX = 4096, ZYGOTE_FD = 3 };

struct request {
    int32_t argc;
    int32_t nfds;
    char args[ARGS_MAX]; /* argc NUL-terminated strings */
};

enum { ZMSG_READY = 1, ZMSG_REPLY = 2, ZMSG_SPARE = 3, ZMSG_SPARE_GONE = 4 };

/* Probe spares kept warm (see DESIGN, The spares), and the most spares
 * the server keeps track of (those, the job spare, and room to spare). */
enum { PROBE_SPARES = 2, SPARES_MAX = 8 };

/* How long the zygote must have had no request before it forks a job
 * spare (see DESIGN, The job spare): long enough that the fork does not
 * compete with the set-up of the job child that took the last one, or
 * with an upload's probe. */
enum { JOB_SPARE_IDLE_MS = 20 };

/* How long the server waits for the zygote's reply to a request before
 * it gives up on that zygote; and how long the zygote waits for its
 * spares to take a request (see DESIGN, The hand-off) before it forks
 * the child itself: well under the server's wait, so a stuck spare costs
 * an upload two seconds, never its zygote. */
enum { REPLY_TIMEOUT_MS = 5000, HANDOFF_TIMEOUT_MS = 2000 };

/* The longest --spare-idle (a day), so a deadline fits poll's int. */
enum { SPARE_IDLE_MAX_MS = 86400 * 1000 };

/* One message from the zygote to the server (see DESIGN). */
struct zmsg {
    int32_t kind;
    int32_t pid; /* REPLY: the child's pid, or -errno; SPARE, SPARE_GONE: the spare's */
};

/* Send a request (its first offsetof(args) + args_len bytes) with nfds
 * descriptors; 0 or -1 with errno. Used by the server towards the zygote
 * and by the zygote towards its spare. */
int zygote_send_request(int sock, struct request *rq, size_t args_len, const int *fds, int nfds);

#endif
