/* A stand-in for nginx in critest's nginx and hostnet-nginx images, built
 * from what the specs observe, not from nginx:
 *   - a process named "nginx" (pidof nginx; the kernel sets comm from the
 *     basename of the executed path, so this binary must be /usr/sbin/nginx);
 *   - whose /proc/<pid>/cmdline says "nginx: master process ..." (the
 *     ContainerPID and PodPID specs grep PID 1's cmdline for it);
 *   - its pid in /var/run/nginx.pid (the HostPID spec compares it with what
 *     pidof sees from a host-PID container);
 *   - serving / with status 200 on the port of the first "listen N;" line of
 *     /etc/nginx/conf.d/default.conf (80, or 12003 for hostnet-nginx).
 * The serving is done by busybox httpd, run as the "worker" child. SIGTERM,
 * SIGINT and SIGQUIT stop both (as PID 1 a process ignores signals it has no
 * handler for). Built with gcc -static. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TITLE "nginx: master process nginx -g daemon off;"
#define CONF "/etc/nginx/conf.d/default.conf"
#define PIDFILE "/var/run/nginx.pid"

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static int listen_port(void)
{
    FILE *f = fopen(CONF, "r");
    char line[512];
    int port = 80;

    if (f == NULL)
        return port;
    while (fgets(line, sizeof line, f) != NULL) {
        int p;
        if (sscanf(line, " listen %d", &p) == 1 && p > 0 && p < 65536) {
            port = p;
            break;
        }
    }
    fclose(f);
    return port;
}

int main(int argc, char **argv, char **envp)
{
    char self[4096], port[16];
    ssize_t n;
    pid_t worker;
    FILE *pf;
    int status;

    (void)argc;
    if (strcmp(argv[0], TITLE) != 0) {
        /* Re-exec under the master's title; the path keeps comm "nginx". */
        char *title[] = {TITLE, NULL};
        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
            perror("nginx: readlink /proc/self/exe");
            return 1;
        }
        self[n] = '\0';
        execve(self, title, envp);
        perror("nginx: re-exec");
        return 1;
    }

    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGQUIT, on_stop);

    pf = fopen(PIDFILE, "w");
    if (pf == NULL || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf) != 0) {
        perror("nginx: " PIDFILE);
        return 1;
    }
    snprintf(port, sizeof port, "%d", listen_port());
    fprintf(stderr, "nginx stand-in: master %d, busybox httpd on port %s\n", (int)getpid(), port);

    worker = fork();
    if (worker < 0) {
        perror("nginx: fork");
        return 1;
    }
    if (worker == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        execl("/bin/httpd", "httpd", "-f", "-p", port, "-h", "/usr/share/nginx/html", (char *)NULL);
        perror("nginx: exec /bin/httpd");
        _exit(127);
    }

    for (;;) {
        pid_t got = waitpid(-1, &status, 0);
        if (got == worker) {
            unlink(PIDFILE);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (got < 0 && errno == EINTR && stop_signal != 0) {
            kill(worker, SIGTERM);
            waitpid(worker, &status, 0);
            unlink(PIDFILE);
            return 0;
        }
        if (got < 0 && errno == ECHILD)
            return 1;
    }
}
