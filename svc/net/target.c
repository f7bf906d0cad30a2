/* target.c - see target.h for the rule. */
#include "net/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <strings.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int net_targets_parse(const char *text, struct net_targets *out)
{
    if (!text || !*text || strcmp(text, "any") == 0) {
        *out = (struct net_targets){.deny_private = 0, .allow_loopback = 1};
        return 0;
    }
    if (strcmp(text, "public") == 0) {
        *out = (struct net_targets){.deny_private = 1, .allow_loopback = 0};
        return 0;
    }
    if (strcmp(text, "public+loopback") == 0) {
        *out = (struct net_targets){.deny_private = 1, .allow_loopback = 1};
        return 0;
    }
    return -EINVAL;
}

static int v4_is_loopback(uint32_t a) { return (a >> 24) == 127; }

/* Not a public unicast IPv4 address (loopback excluded: asked apart). */
static int v4_is_special(uint32_t a)
{
    static const struct { uint32_t net; int bits; } nets[] = {
        {0x00000000, 8},  /* 0/8 "this network" */
        {0x0A000000, 8},  /* 10/8 */
        {0x64400000, 10}, /* 100.64/10 CGNAT */
        {0xA9FE0000, 16}, /* 169.254/16 link-local, cloud metadata */
        {0xAC100000, 12}, /* 172.16/12 */
        {0xC0000000, 24}, /* 192.0.0/24 IETF assignments */
        {0xC0000200, 24}, /* 192.0.2/24 TEST-NET-1 */
        {0xC0A80000, 16}, /* 192.168/16 */
        {0xC6120000, 15}, /* 198.18/15 benchmarking */
        {0xC6336400, 24}, /* 198.51.100/24 TEST-NET-2 */
        {0xCB007100, 24}, /* 203.0.113/24 TEST-NET-3 */
        {0xE0000000, 4},  /* 224/4 multicast */
        {0xF0000000, 4},  /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
        uint32_t mask = 0xFFFFFFFFu << (32 - nets[i].bits);
        if ((a & mask) == nets[i].net)
            return 1;
    }
    return 0;
}

static int v4_allowed(uint32_t a, int allow_loopback)
{
    if (v4_is_loopback(a))
        return allow_loopback;
    return !v4_is_special(a);
}

static int v6_allowed(const struct in6_addr *addr, int allow_loopback)
{
    const uint8_t *b = addr->s6_addr;
    uint32_t tail = ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) | b[15];
    static const uint8_t zero10[10] = {0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};

    if (IN6_IS_ADDR_LOOPBACK(addr))
        return allow_loopback;
    if (IN6_IS_ADDR_UNSPECIFIED(addr))
        return 0;
    /* ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the kernel
     * connects to the IPv4, so that is what is judged. */
    if (memcmp(b, zero10, 10) == 0 &&
        ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)))
        return v4_allowed(tail, allow_loopback);
    if (memcmp(b, nat64, 12) == 0) /* 64:ff9b::/96 NAT64 */
        return v4_allowed(tail, allow_loopback);
    if (b[0] == 0x20 && b[1] == 0x02) { /* 2002::/16 6to4 carries an IPv4 in bytes 2..5 */
        uint32_t v4 = ((uint32_t)b[2] << 24) | ((uint32_t)b[3] << 16) | ((uint32_t)b[4] << 8) | b[5];
        return v4_allowed(v4, allow_loopback);
    }
    if ((b[0] & 0xfe) == 0xfc)                 /* fc00::/7 unique local */
        return 0;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
        return 0;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (old) */
        return 0;
    if (b[0] == 0xff)                          /* multicast */
        return 0;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 */
        return 0;
    if (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, zero10, 6) == 0) /* 100::/64 discard */
        return 0;
    return 1;
}

int net_address_allowed(const struct sockaddr *addr, const struct net_targets *rule)
{
    if (!rule->deny_private)
        return 1;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        return v4_allowed(ntohl(in->sin_addr.s_addr), rule->allow_loopback);
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        return v6_allowed(&in6->sin6_addr, rule->allow_loopback);
    }
    return 0;
}

int net_url_check(const char *url, const char *what, char *err, size_t err_cap)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL;
    int ret = -EINVAL;

    if (!url || !*url) {
        snprintf(err, err_cap, "%s is empty", what);
        goto out;
    }
    if (strlen(url) > NET_URL_MAX) {
        snprintf(err, err_cap, "%s is longer than %d bytes", what, NET_URL_MAX);
        goto out;
    }
    u = curl_url();
    if (!u) {
        ret = -ENOMEM;
        snprintf(err, err_cap, "out of memory");
        goto out;
    }
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        snprintf(err, err_cap, "%s is not a valid URL (%s)", what, curl_url_strerror(rc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, err_cap, "%s must be http:// or https://", what);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        snprintf(err, err_cap, "%s has no host", what);
        goto out;
    }
    ret = 0;
out:
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ret;
}

/* 1 if name is "localhost" or ends in ".localhost" (RFC 6761: loopback). */
static int is_localhost(const char *name)
{
    size_t n = strlen(name);
    while (n > 0 && name[n - 1] == '.')
        n--; /* "localhost." */
    return (n == 9 && strncasecmp(name, "localhost", 9) == 0) ||
           (n > 10 && strncasecmp(name + n - 10, ".localhost", 10) == 0);
}

int net_url_target_check(const char *url, const char *what, const struct net_targets *rule,
                         char *err, size_t err_cap)
{
    CURLU *u = NULL;
    char *host = NULL;
    struct addrinfo *ai = NULL;
    char literal[256];
    int ret = net_url_check(url, what, err, err_cap);
    if (ret != 0 || !rule->deny_private)
        goto out;
    ret = -EINVAL;
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, err_cap, "%s is not a valid URL", what);
        goto out;
    }
    /* "[v6]" to "v6" (a zone "%25eth0" stays for getaddrinfo to judge). */
    size_t len = strlen(host);
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']')
        snprintf(literal, sizeof(literal), "%.*s", (int)(len - 2), host + 1);
    else
        snprintf(literal, sizeof(literal), "%s", host);
    if (is_localhost(literal) && !rule->allow_loopback) {
        snprintf(err, err_cap, "%s: host %s is loopback, not allowed (--fetch-targets)", what,
                 literal);
        goto out;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC};
    if (getaddrinfo(literal, NULL, &hints, &ai) == 0) {
        for (const struct addrinfo *a = ai; a; a = a->ai_next)
            if (!net_address_allowed(a->ai_addr, rule)) {
                snprintf(err, err_cap, "%s: address %s is not allowed (--fetch-targets)", what,
                         literal);
                goto out;
            }
    }
    ret = 0;
out:
    if (ai)
        freeaddrinfo(ai);
    curl_free(host);
    curl_url_cleanup(u);
    return ret;
}

/* CURLOPT_OPENSOCKETFUNCTION: sees the address libcurl is about to connect
 * to, after name resolution, so the rule judges where the bytes go. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    struct net_guard *g = clientp;
    if (purpose == CURLSOCKTYPE_IPCXN && !net_address_allowed(&address->addr, &g->rule)) {
        g->blocked = 1;
        const void *src = NULL;
        if (address->family == AF_INET)
            src = &((const struct sockaddr_in *)(const void *)&address->addr)->sin_addr;
        else if (address->family == AF_INET6)
            src = &((const struct sockaddr_in6 *)(const void *)&address->addr)->sin6_addr;
        if (!src || !inet_ntop(address->family, src, g->blocked_addr, sizeof(g->blocked_addr)))
            snprintf(g->blocked_addr, sizeof(g->blocked_addr), "?");
        return CURL_SOCKET_BAD;
    }
    /* CLOEXEC: the service forks job workers, which must not inherit these. */
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

int net_guard_attach(CURL *e, struct net_guard *g)
{
    CURLcode rc = CURLE_OK;
    g->blocked = 0;
    g->blocked_addr[0] = '\0';
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_PROXY, ""); /* ignore *_proxy from the environment */
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, g);
    return rc == CURLE_OK ? 0 : -EINVAL;
}
