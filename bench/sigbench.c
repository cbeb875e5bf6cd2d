/* bench/sigbench.c: signal-forwarding latency through an init.
 *
 *   sigbench TRIES INIT [ARGS...]      e.g. sigbench 200 tini -- ./sigapp
 *
 * Starts INIT ARGS... as its own child (so the init is NOT PID 1 here; it runs in the
 * current PID namespace) with stdout on a pipe, and waits for sigapp's "ready" record.
 * Then, TRIES times, 2 ms apart: records CLOCK_MONOTONIC, kill(init, SIGUSR1), and reads
 * the time at which sigapp's handler ran. latency = handler time - time before kill().
 * Every wait is bounded (5 s for ready, 1 s per signal). Prints one line:
 *   median_us=... p99_us=... min_us=... max_us=... tries=... lost=...
 * Exit status 0 when no signal was lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads one 8-byte record within timeout_ms; 0 on success. */
static int read_record(int fd, int64_t *out, int timeout_ms) {
    size_t got = 0;
    unsigned char *p = (unsigned char *)out;
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    while (got < sizeof *out) {
        int left = (int)((deadline - now_ns()) / 1000000);
        if (left < 0)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(fd, p + got, sizeof *out - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Waits up to timeout_ms for pid; 1 if it was reaped. */
static int wait_bounded(pid_t pid, int timeout_ms) {
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 1;
        if (now_ns() > deadline)
            return 0;
        usleep(5000);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sigbench TRIES INIT [ARGS...]\n");
        return 2;
    }
    int tries = atoi(argv[1]);
    if (tries < 1)
        return 2;
    int fds[2];
    if (pipe(fds) < 0) {
        perror("sigbench: pipe");
        return 3;
    }
    pid_t init = fork();
    if (init < 0) {
        perror("sigbench: fork");
        return 3;
    }
    if (init == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[2], argv + 2);
        perror("sigbench: exec");
        _exit(127);
    }
    close(fds[1]);
    int64_t app = 0;
    if (read_record(fds[0], &app, 5000) != 0) {
        fprintf(stderr, "sigbench: the app never became ready\n");
        kill(init, SIGKILL);
        wait_bounded(init, 2000);
        return 3;
    }
    int64_t *lat = calloc((size_t)tries, sizeof *lat);
    int n = 0, lost = 0;
    for (int i = 0; i < tries; i++) {
        struct timespec gap = {0, 2000000};
        nanosleep(&gap, NULL);
        int64_t t0 = now_ns();
        if (kill(init, SIGUSR1) < 0) {
            perror("sigbench: kill");
            lost++;
            break;
        }
        int64_t t1;
        if (read_record(fds[0], &t1, 1000) != 0) {
            lost++;
            continue;
        }
        lat[n++] = t1 - t0;
    }
    /* Shut down: SIGTERM to the init (forwarded; the app dies of it), then SIGKILL. */
    kill(init, SIGTERM);
    if (!wait_bounded(init, 3000)) {
        kill(init, SIGKILL);
        wait_bounded(init, 2000);
    }
    if (app > 1)
        kill((pid_t)app, SIGKILL); /* pdeathsig covers this too; harmless if gone */
    if (n == 0) {
        printf("median_us=nan p99_us=nan min_us=nan max_us=nan tries=%d lost=%d\n", tries, lost);
        return 1;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp64);
    double median = n % 2 ? lat[n / 2] : (lat[n / 2 - 1] + lat[n / 2]) / 2.0;
    int k = (99 * n + 99) / 100 - 1; /* nearest rank: ceil(0.99 n) - 1 */
    printf("median_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f tries=%d lost=%d\n", median / 1e3,
           lat[k] / 1e3, lat[0] / 1e3, lat[n - 1] / 1e3, tries, lost);
    return lost ? 1 : 0;
}
