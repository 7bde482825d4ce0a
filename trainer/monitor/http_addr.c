/* --http HOST:PORT through getaddrinfo (http_addr.h). */
#include "http_addr.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_addr_resolve(const char *spec, http_addr *out, int max, char *err, size_t n)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec) {
        snprintf(err, n, "expected HOST:PORT (an IPv4 address, [IPv6] or a host name)");
        return -1;
    }
    char host[256];
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (spec[0] == '[') { /* [IPv6]:PORT */
        if (hl < 2 || spec[hl - 1] != ']') {
            snprintf(err, n, "expected [IPv6]:PORT");
            return -1;
        }
        h = spec + 1, hl -= 2;
    } else if (memchr(spec, ':', hl)) {
        snprintf(err, n, "an IPv6 address goes in brackets ([::1]:8080)");
        return -1;
    }
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, n, "expected HOST:PORT with a host of at most 255 bytes");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    const long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || colon[1] == '-' || colon[1] == '+' || port > 65535) {
        snprintf(err, n, "the port must be 0..65535 (0: the system chooses)");
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, n, "cannot resolve '%s' (%s)", host, gai_strerror(rc));
        return -1;
    }
    int k = 0;
    for (const struct addrinfo *a = res; a && k < max; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            a->ai_addrlen > sizeof out[k].sa)
            continue;
        int dup = 0; /* one entry an address (getaddrinfo may repeat one) */
        for (int j = 0; j < k; j++)
            dup |=
                out[j].len == a->ai_addrlen && memcmp(&out[j].sa, a->ai_addr, a->ai_addrlen) == 0;
        if (dup) continue;
        memset(&out[k], 0, sizeof out[k]);
        memcpy(&out[k].sa, a->ai_addr, a->ai_addrlen);
        out[k].len = a->ai_addrlen, out[k].family = a->ai_family;
        if (a->ai_family == AF_INET)
            ((struct sockaddr_in *)&out[k].sa)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&out[k].sa)->sin6_port = htons((uint16_t)port);
        k++;
    }
    freeaddrinfo(res);
    if (k == 0) snprintf(err, n, "'%s' has no IPv4 or IPv6 address", host);
    return k > 0 ? k : -1;
}

unsigned http_addr_port(const http_addr *a)
{
    return a->family == AF_INET ? ntohs(((const struct sockaddr_in *)&a->sa)->sin_port)
                                : ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}
