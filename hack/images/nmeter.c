/* A stand-in for busybox's nmeter applet, which Debian's busybox builds
 * leave out, for the one use Kubernetes' node e2e specs make of it:
 *
 *     date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z
 *
 * (test/e2e_node/container_lifecycle_pod_construction.go: a timestamp with
 * milliseconds, which busybox's date cannot print).
 *
 * Usage: nmeter [-d MSEC] FORMAT. FORMAT is printed once every MSEC
 * milliseconds (default 1000; 0 prints without pause) until the reader goes
 * away, with each %[N]t replaced by the local time as HH:MM:SS and N
 * decimals of the second (busybox's meaning), and %% by %. Any other
 * conversion of busybox's nmeter (cpu, memory, network, ...) is refused. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void put_time(int prec) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long scale = 1;
    for (int i = prec; i < 6; i++) scale *= 10;
    /* Rounded to the precision asked for, carrying into the seconds. */
    long frac = (tv.tv_usec + scale / 2) / scale;
    time_t t = tv.tv_sec;
    long limit = 1;
    for (int i = 0; i < prec; i++) limit *= 10;
    if (prec > 0 && frac >= limit) { frac -= limit; t++; }
    if (prec == 0 && tv.tv_usec >= 500000) t++;
    struct tm tm;
    localtime_r(&t, &tm);
    printf("%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (prec > 0) printf(".%0*ld", prec, frac);
}

static int check(const char *fmt) {
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') continue;
        p++;
        while (*p >= '0' && *p <= '9') p++;
        if (*p != 't' && *p != '%') {
            fprintf(stderr, "nmeter: unsupported conversion %%%c (this stand-in knows %%t only)\n", *p ? *p : ' ');
            return -1;
        }
    }
    return 0;
}

static void print_line(const char *fmt) {
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') { putchar(*p); continue; }
        p++;
        int prec = 0;
        while (*p >= '0' && *p <= '9') prec = prec * 10 + (*p++ - '0');
        if (prec > 6) prec = 6;
        if (*p == 't') put_time(prec); else putchar('%');
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    long delay_ms = 1000;
    int opt;
    while ((opt = getopt(argc, argv, "d:")) != -1) {
        if (opt != 'd') { fprintf(stderr, "usage: nmeter [-d MSEC] FORMAT\n"); return 1; }
        char *end;
        errno = 0;
        delay_ms = strtol(optarg, &end, 10);
        if (errno || *end || delay_ms < 0) { fprintf(stderr, "nmeter: bad -d %s\n", optarg); return 1; }
    }
    if (optind != argc - 1) { fprintf(stderr, "usage: nmeter [-d MSEC] FORMAT\n"); return 1; }
    const char *fmt = argv[optind];
    if (check(fmt)) return 1;
    signal(SIGPIPE, SIG_DFL);
    for (;;) {
        print_line(fmt);
        if (fflush(stdout) == EOF) return 0; /* the reader went away */
        if (delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}
