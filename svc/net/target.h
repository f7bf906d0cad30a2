/*
 * target.h - what the server may connect to on a user's behalf: the one
 * address rule of webhooks (--webhook-targets) and of fetches and
 * deliveries to URLs (--fetch-targets), and the libcurl hook that applies
 * it to the address actually connected to.
 *
 * THE RULE (net_targets_parse):
 *   "any": every address.
 *   "public": only public unicast addresses. Refused: loopback (127/8,
 *   ::1), private (10/8, 172.16/12, 192.168/16, fc00::/7 unique local),
 *   link-local (169.254/16 with the cloud metadata address
 *   169.254.169.254, fe80::/10, fec0::/10), CGNAT (100.64/10), "this
 *   network" (0/8, ::), multicast (224/4, ff00::/8), reserved (240/4,
 *   broadcast), IETF, documentation and benchmarking ranges, 100::/64;
 *   an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
 *   (64:ff9b::/96) or 6to4 (2002::/16) address is judged by the IPv4 it
 *   carries. Any other family is refused.
 *   "public+loopback": the same, loopback allowed.
 *   The rule judges socket addresses, never a URL's text: net_guard_attach
 *   installs it as CURLOPT_OPENSOCKETFUNCTION, which libcurl calls with
 *   the resolved address it is about to connect to, for every connection
 *   (each redirect hop included). A hostname that resolves to 10.0.0.1,
 *   odd spellings (2130706433, 0x7f.1, [::ffff:127.0.0.1]) and DNS
 *   rebinding (a second answer between a check and a connect) cannot get
 *   around it: the address checked is the address used. Proxies from the
 *   environment are switched off for the same reason.
 *
 * Threading: every function may be called from any thread; a net_guard
 * belongs to one transfer (one thread at a time).
 * Errors: -EINVAL with a sentence in err.
 */
#ifndef VIDQ_NET_TARGET_H
#define VIDQ_NET_TARGET_H

#include <netinet/in.h>
#include <stddef.h>

#include <curl/curl.h>

#define NET_URL_MAX 2048

/* The rule: which addresses may be connected to. */
struct net_targets {
    int deny_private;   /* refuse every non-public address */
    int allow_loopback; /* with deny_private: still allow loopback */
};

/* Parse "any", "public" or "public+loopback" (NULL or "" = "any").
 * 0, or -EINVAL for anything else. */
int net_targets_parse(const char *text, struct net_targets *out);

/* 1 if a connection to addr is allowed under the rule, else 0. */
int net_address_allowed(const struct sockaddr *addr, const struct net_targets *rule);

/* Check a URL's shape with libcurl's URL API: absolute http:// or https://
 * with a host, at most NET_URL_MAX bytes. `what` names it in the message
 * ("webhook url", "input_url"). 0, or -EINVAL with a sentence in err. */
int net_url_check(const char *url, const char *what, char *err, size_t err_cap);

/* The part of the rule that can be judged from a URL's text alone, before
 * any connection: the URL's shape (net_url_check), and, when its host is
 * an address literal in any spelling libc accepts (127.0.0.1, 2130706433,
 * 0x7f.1, [::ffff:127.0.0.1]) or "localhost" (or a name under it), that
 * the rule allows that address. A hostname is judged later, at connect
 * time, by net_guard_attach. 0, or -EINVAL with a sentence in err. */
int net_url_target_check(const char *url, const char *what, const struct net_targets *rule,
                         char *err, size_t err_cap);

/* The state of the rule on one transfer: which address was refused. */
struct net_guard {
    struct net_targets rule;
    int blocked;                          /* an address was refused */
    char blocked_addr[INET6_ADDRSTRLEN];  /* the last refused one, printable */
};

/* Set on easy: the rule on every connect (CURLOPT_OPENSOCKETFUNCTION, with
 * guard as its data; sockets are opened CLOEXEC), http and https only (also
 * on redirects) and no proxy. guard is borrowed and must outlive the
 * transfer. 0, or -EINVAL if libcurl refused an option. */
int net_guard_attach(CURL *easy, struct net_guard *guard);

#endif
