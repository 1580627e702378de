/*
 * guard.c - what a webhook may reach (server-side request forgery).
 *
 * Tenants choose the URLs, the server makes the requests, so a URL must not
 * reach the server's own network: loopback, private, link-local, CGNAT,
 * multicast, reserved, documentation and unspecified ranges are refused,
 * IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4)
 * are judged by that address, and the operator may exempt CIDRs
 * (webhook_allow_cidr).  URLs are checked when saved (resolving the host)
 * and every connection is checked again at the socket by the sender, so a
 * name that resolves differently later (DNS rebinding) is still refused.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include <curl/curl.h>

#include "core/log.h"
#include "webhook.h"

struct range {
    unsigned char addr[16];
    int bits;
};

/* IPv4 ranges, as the first bytes of the address. */
static const struct range v4_refused[] = {
    {{0}, 8},                  /* "this network", unspecified */
    {{10}, 8},                 /* private */
    {{100, 64}, 10},           /* CGNAT */
    {{127}, 8},                /* loopback */
    {{169, 254}, 16},          /* link-local */
    {{172, 16}, 12},           /* private */
    {{192, 0, 0}, 24},         /* IETF protocol assignments */
    {{192, 0, 2}, 24},         /* documentation */
    {{192, 88, 99}, 24},       /* 6to4 relay anycast */
    {{192, 168}, 16},          /* private */
    {{198, 18}, 15},           /* benchmarking */
    {{198, 51, 100}, 24},      /* documentation */
    {{203, 0, 113}, 24},       /* documentation */
    {{224}, 4},                /* multicast */
    {{240}, 4},                /* reserved, broadcast */
};

static const struct range v6_refused[] = {
    {{0}, 96},                  /* ::/96 unspecified, loopback, IPv4-compatible (embedded: below) */
    {{0x01, 0x00}, 64},         /* discard */
    {{0, 0x64, 0xff, 0x9b, 0, 0x01}, 48}, /* local-use NAT64 (RFC 8215): any IPv4 behind it */
    {{0x20, 0x01, 0x00}, 23},   /* IETF protocol assignments, Teredo */
    {{0x20, 0x01, 0x0d, 0xb8}, 32}, /* documentation */
    {{0xfc}, 7},                /* unique local */
    {{0xfe, 0x80}, 10},         /* link-local */
    {{0xfe, 0xc0}, 10},         /* site-local (deprecated) */
    {{0xff}, 8},                /* multicast */
};

static bool
prefix_match(const unsigned char *a, const unsigned char *p, int bits)
{
    int whole = bits / 8, rest = bits % 8;

    if (memcmp(a, p, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (p[whole] & mask);
}

static bool
in_ranges(const unsigned char *a, const struct range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (prefix_match(a, r[i].addr, r[i].bits))
            return true;
    return false;
}

static bool
allowed_by_cidr(const struct webhook_guard *g, int family, const unsigned char *a)
{
    for (int i = 0; i < g->ncidr; i++)
        if (g->cidr[i].family == family && prefix_match(a, g->cidr[i].addr, g->cidr[i].bits))
            return true;
    return false;
}

/* The IPv4 address an IPv6 one embeds (mapped, SIIT, compatible, NAT64, 6to4), or false. */
static bool
embedded_v4(const unsigned char *a, unsigned char v4[4])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const unsigned char zero[12] = {0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};

    if (memcmp(a, mapped, 12) == 0 || memcmp(a, siit, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
        (memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14] | a[15]) != 0 &&
         !(a[12] == 0 && a[13] == 0 && a[14] == 0))) {
        memcpy(v4, a + 12, 4);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
        memcpy(v4, a + 2, 4);
        return true;
    }
    return false;
}

static bool
v4_allowed(const struct webhook_guard *g, const unsigned char *a)
{
    return allowed_by_cidr(g, AF_INET, a) ||
           !in_ranges(a, v4_refused, sizeof(v4_refused) / sizeof(v4_refused[0]));
}

bool
webhook_addr_allowed(const struct webhook_guard *g, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return v4_allowed(g, (const unsigned char *)&s4->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        unsigned char v4[4];
        if (allowed_by_cidr(g, AF_INET6, a))
            return true;
        if (embedded_v4(a, v4))
            return v4_allowed(g, v4);
        return !in_ranges(a, v6_refused, sizeof(v6_refused) / sizeof(v6_refused[0]));
    }
    return false; /* unix sockets and the rest: never */
}

/* Parses "ADDR/BITS" or "ADDR" into c. */
static bool
cidr_parse(const char *s, size_t len, struct webhook_cidr *c)
{
    char buf[64];
    const char *slash;
    int64_t bits;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    slash = strchr(buf, '/');
    if (slash)
        buf[slash - buf] = '\0';
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, buf, c->addr) == 1)
        c->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, c->addr) == 1)
        c->family = AF_INET6;
    else
        return false;
    bits = c->family == AF_INET ? 32 : 128;
    if (slash && !parse_int64(slash + 1, 0, bits, &bits))
        return false;
    c->bits = (int)bits;
    return true;
}

mc_err
webhook_guard_init(struct webhook_guard *g, const struct config *cfg)
{
    const char *s = cfg->webhook_allow_cidr;

    memset(g, 0, sizeof(*g));
    g->allow_http = cfg->webhook_allow_http != 0;
    while (s && *s) {
        size_t len = strcspn(s, ",");
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
        if (len > 0) {
            if (g->ncidr == WEBHOOK_MAX_CIDRS || !cidr_parse(s, len, &g->cidr[g->ncidr])) {
                log_error("event=config error=\"webhook_allow_cidr: a bad CIDR or more than %d\"",
                          WEBHOOK_MAX_CIDRS);
                return MC_ERR_CONFIG;
            }
            g->ncidr++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return MC_ERR_OK;
}

static bool
resolve_check(const struct webhook_guard *g, const char *host, const char **why)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    bool ok = true;

    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        *why = "the URL's host does not resolve";
        return false;
    }
    for (struct addrinfo *a = res; a && ok; a = a->ai_next)
        ok = webhook_addr_allowed(g, a->ai_addr);
    freeaddrinfo(res);
    if (!ok)
        *why = "the URL's host resolves to a private, loopback, link-local or reserved address";
    return ok;
}

bool
webhook_url_check(const struct webhook_guard *g, const char *url, bool resolve, const char **why)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *port = NULL;
    bool ok = false;

    *why = "the URL is not a valid absolute http(s) URL";
    if (u == NULL || strlen(url) > 2048 || strpbrk(url, " \t\r\n") != NULL)
        goto out;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
        goto out;
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        *why = "the URL's scheme must be https (or http when the operator allows it)";
        goto out;
    }
    if (strcmp(scheme, "http") == 0 && !g->allow_http) {
        *why = "the URL must use https (the operator has not allowed http)";
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        *why = "the URL must not contain a user name or password";
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && strcmp(port, "0") == 0) {
        *why = "the URL's port must be between 1 and 65535";
        goto out;
    }
    if (resolve) {
        size_t n = strlen(host);
        if (host[0] == '[' && n > 2) { /* an IPv6 literal */
            memmove(host, host + 1, n - 2);
            host[n - 2] = '\0';
        }
        if (!resolve_check(g, host, why))
            goto out;
    }
    ok = true;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}
