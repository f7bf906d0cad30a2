/* fuzz_webhook: what decides where a webhook may go (svc/hooks/deliver.c):
 * the URL check of registration and upload (hook_url_check), the
 * --webhook-targets policy (hook_targets_parse) and the address test made
 * on connect (hook_address_allowed); plus the "events" list of a
 * registration (hook_events_from_json). First byte: what to test.
 * Address oracles: "any" allows everything; loopback follows
 * allow_loopback; an IPv4-mapped or -compatible IPv6 address, NAT64 and
 * 6to4 are judged as the IPv4 they carry. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>

#include "hooks/deliver.h"
#include "store/hook_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int v4(uint32_t addr_host_order, int deny, int loop)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(addr_host_order);
    return hook_address_allowed((const struct sockaddr *)&in, deny, loop);
}

static void addresses(const uint8_t *d, size_t n, int deny, int loop)
{
    if (n >= 4) {
        uint32_t a = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
        int r = v4(a, deny, loop);
        if (!deny && r != 1)
            abort();
        if (deny && (a >> 24) == 127 && r != loop)
            abort();
        /* The same address inside IPv6 wrappers. */
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        in6.sin6_addr.s6_addr[10] = 0xff;
        in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(in6.sin6_addr.s6_addr + 12, d, 4);
        if (hook_address_allowed((const struct sockaddr *)&in6, deny, loop) != r)
            abort();
        memset(&in6.sin6_addr, 0, sizeof(in6.sin6_addr));
        static const uint8_t nat64[4] = {0x00, 0x64, 0xff, 0x9b};
        memcpy(in6.sin6_addr.s6_addr, nat64, 4);
        memcpy(in6.sin6_addr.s6_addr + 12, d, 4);
        if (hook_address_allowed((const struct sockaddr *)&in6, deny, loop) != r)
            abort();
        memset(&in6.sin6_addr, 0, sizeof(in6.sin6_addr));
        in6.sin6_addr.s6_addr[0] = 0x20;
        in6.sin6_addr.s6_addr[1] = 0x02;
        memcpy(in6.sin6_addr.s6_addr + 2, d, 4);
        if (hook_address_allowed((const struct sockaddr *)&in6, deny, loop) != r)
            abort();
    }
    if (n >= 16) {
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        memcpy(in6.sin6_addr.s6_addr, d, 16);
        int r = hook_address_allowed((const struct sockaddr *)&in6, deny, loop);
        if (r != 0 && r != 1)
            abort();
        if (!deny && r != 1)
            abort();
        if (deny && IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr) && r != loop)
            abort();
    }
    struct sockaddr other;
    memset(&other, 0, sizeof(other));
    other.sa_family = AF_UNIX;
    if (hook_address_allowed(&other, deny, loop) != !deny)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[512] = "";
    switch (data[0] % 4) {
    case 0: {
        int r = hook_url_check(text, err, sizeof(err));
        if (r != 0 && (r > 0 || !err[0]))
            abort();
        if (r == 0 && strncasecmp(text, "http", 4) != 0)
            abort(); /* only http:// and https:// URLs pass */
        break;
    }
    case 1: {
        int deny = -1, loop = -1;
        if (hook_targets_parse(text, &deny, &loop) == 0) {
            if ((deny != 0 && deny != 1) || (loop != 0 && loop != 1))
                abort();
        }
        break;
    }
    case 2:
        for (int deny = 0; deny <= 1; deny++)
            for (int loop = 0; loop <= 1; loop++)
                addresses(data + 1, size - 1, deny, loop);
        break;
    default: {
        json_t *events = json_loadb(text, size - 1, JSON_DECODE_ANY, NULL);
        if (events) {
            int mask = hook_events_from_json(events, err, sizeof(err));
            if (mask > 0) {
                json_t *back = hook_events_to_json(mask);
                if (back && hook_events_from_json(back, err, sizeof(err)) != mask)
                    abort();
                json_decref(back);
            }
            json_decref(events);
        }
        break;
    }
    }
    free(text);
    return 0;
}
