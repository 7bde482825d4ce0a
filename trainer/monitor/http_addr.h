/* trainer/monitor/http_addr.h: `seqpar monitor --http HOST:PORT` into the
 * addresses to serve on: an IPv4 address, an IPv6 one in brackets
 * ([::1]:8080, [::]:8080 for every interface), or a host name that
 * getaddrinfo resolves (localhost:8080); PORT 0..65535 (0: the system
 * chooses). */
#ifndef SEQPAR_MONITOR_HTTP_ADDR_H
#define SEQPAR_MONITOR_HTTP_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define HTTP_ADDR_MAX 8

typedef struct http_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    int family; /* AF_INET or AF_INET6 */
} http_addr;

/* The addresses of spec, in getaddrinfo's order (at most max): their count,
 * or -1 with one line in err (a malformed spec, a bad port, a host that does
 * not resolve). */
int http_addr_resolve(const char *spec, http_addr *out, int max, char *err, size_t n);
/* The port of an address. */
unsigned http_addr_port(const http_addr *a);

#endif
