/* sessionstorm DIR EXIT_CODE CHAINS PERIOD_MS SLEEPERS
 *
 * An app that leaves behind processes which keep escaping into new sessions: it starts
 * CHAINS chains of "members" that ignore SIGTERM; each member sleeps PERIOD_MS, forks a
 * successor and exits, and each successor calls setsid() first. At any moment each chain
 * has one or two members alive, each a new pid in a new session, so killing the pids
 * found by one scan of /proc misses a successor forked after the scan.
 *
 * Every member appends one byte to DIR/beat per generation: while that file grows, some
 * chain is alive (a test cannot reliably see a 10 ms process in /proc, but it can see
 * this). Once the first chain has made GENERATIONS_BEFORE_EXIT generations (it writes
 * DIR/running), the app itself exits with EXIT_CODE (99 if that takes over 5 s).
 *
 * It also leaves SLEEPERS plain processes (each in a session of its own, ignoring SIGTERM,
 * waiting for a signal): ordinary leftovers, which make a scan of /proc take longer, as
 * on a busy machine, and so widen the window in which a chain forks past the scan.
 *
 * Every member has DIR in its argv (inherited across fork, no exec), so a test can also
 * find them by /proc/PID/cmdline. Safety nets: a member exits once DIR/stop exists or 60 s
 * after its chain began, a sleeper after 60 s (SIGALRM), so nothing outlives a failed
 * test for long.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define GENERATIONS_BEFORE_EXIT 20
#define LIFETIME_S 60

static void pause_ns(long ns) {
    struct timespec t = {0, ns};
    nanosleep(&t, NULL);
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
}

static void member(const char *stop, const char *running, const char *beat, long period_ns) {
    time_t began = time(NULL);
    signal(SIGTERM, SIG_IGN);
    for (long generation = 1;; generation++) {
        if (access(stop, F_OK) == 0 || time(NULL) - began > LIFETIME_S) _exit(0);
        if (generation == GENERATIONS_BEFORE_EXIT && running) touch(running);
        int fd = open(beat, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            (void)!write(fd, ".", 1);
            close(fd);
        }
        pause_ns(period_ns);
        pid_t successor = fork();
        if (successor < 0) {
            pause_ns(period_ns);
            continue;
        }
        if (successor > 0) _exit(0);
        setsid();
    }
}

static void sleeper(void) {
    signal(SIGTERM, SIG_IGN);
    setsid();
    alarm(LIFETIME_S);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: sessionstorm DIR EXIT_CODE CHAINS PERIOD_MS SLEEPERS\n");
        return 100;
    }
    char stop[4096], running[4096], beat[4096];
    snprintf(stop, sizeof stop, "%s/stop", argv[1]);
    snprintf(running, sizeof running, "%s/running", argv[1]);
    snprintf(beat, sizeof beat, "%s/beat", argv[1]);
    int chains = atoi(argv[3]);
    long period_ns = atol(argv[4]) * 1000 * 1000;
    if (chains < 1 || period_ns <= 0 || period_ns >= 1000L * 1000 * 1000) {
        fprintf(stderr, "sessionstorm: CHAINS >= 1, 0 < PERIOD_MS < 1000\n");
        return 100;
    }
    int sleepers = atoi(argv[5]);
    for (int i = 0; i < sleepers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("sessionstorm: fork");
            return 100;
        }
        if (pid == 0) sleeper();
    }
    for (int chain = 0; chain < chains; chain++) {
        pid_t first = fork();
        if (first < 0) {
            perror("sessionstorm: fork");
            return 100;
        }
        if (first == 0) member(stop, chain == 0 ? running : NULL, beat, period_ns);
    }
    for (int i = 0; i < 5000; i++) {
        if (access(running, F_OK) == 0) return atoi(argv[2]);
        pause_ns(1000 * 1000);
    }
    fprintf(stderr, "sessionstorm: the chain did not get going\n");
    return 99;
}
