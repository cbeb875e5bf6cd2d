/*
 * The app and the pre_stop hook that tests/kubelet.rs runs under graceinit in a
 * FROM-scratch image (no shell, no libc: compiled with `musl-gcc -static`). Both leave
 * their traces as lines appended to DIR/events, a directory bind-mounted from the host,
 * so that the test counts them exactly and sees their order.
 *
 *   app serve DIR CODE   catch SIGTERM; create DIR/ready once it is caught; on SIGTERM
 *                        append "term" to DIR/events and exit CODE
 *   app hook DIR         append "pre_stop" to DIR/events and exit 0 (the pre_stop hook)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;

static void on_term(int sig) {
    (void)sig;
    got_term = 1;
}

/* Appends one line to DIR/NAME in a single write (O_APPEND: whole lines, in order). */
static int append(const char *dir, const char *name, const char *line) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    size_t len = strlen(line);
    ssize_t n = write(fd, line, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "hook") == 0)
        return append(argv[2], "events", "pre_stop\n") == 0 ? 0 : 1;

    if (argc == 4 && strcmp(argv[1], "serve") == 0) {
        struct sigaction act;
        sigset_t term, old;
        memset(&act, 0, sizeof act);
        act.sa_handler = on_term;
        sigemptyset(&act.sa_mask);
        /* TERM stays blocked outside sigsuspend: it cannot slip in between the check of
         * the flag and the wait. */
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, &old);
        sigdelset(&old, SIGTERM);
        sigaction(SIGTERM, &act, NULL);
        if (append(argv[2], "ready", "ready\n") != 0)
            return 1;
        while (!got_term)
            sigsuspend(&old);
        if (append(argv[2], "events", "term\n") != 0)
            return 1;
        return atoi(argv[3]);
    }

    fprintf(stderr, "usage: app serve DIR CODE | app hook DIR\n");
    return 64;
}
