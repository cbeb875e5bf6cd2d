/*
 * The app that tests/container.rs runs under graceinit inside a FROM-scratch image.
 * A scratch image has no shell and no libc, so this is compiled with `musl-gcc -static`.
 *
 *   testapp trap-term CODE   catch SIGTERM, print "caught SIGTERM", exit CODE
 *   testapp default-term     leave SIGTERM at its default disposition and wait to be killed
 *   testapp exit CODE        exit at once with CODE
 *
 * The waiting modes first print one line, written only once the app is ready for signals:
 *   ready pid=P ppid=Q sigterm=default|ignored|handled blocked=yes|no
 * so the test knows when to signal and can check what graceinit handed down: a child of
 * PID 1 (ppid=1), started with SIGTERM neither blocked nor ignored (the state read at the
 * top of main, before the app installs its own handler).
 */
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

static void say(const char *line) {
    size_t len = strlen(line);
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, line, len);
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

/* What the app was started with, read before it changes anything. */
static char inherited[96];

static void read_inherited(void) {
    struct sigaction current;
    sigset_t mask;
    const char *disposition = "default";

    sigaction(SIGTERM, NULL, &current);
    if (current.sa_handler == SIG_IGN)
        disposition = "ignored";
    else if (current.sa_handler != SIG_DFL)
        disposition = "handled";
    sigprocmask(SIG_BLOCK, NULL, &mask);
    snprintf(inherited, sizeof inherited, "sigterm=%s blocked=%s", disposition,
             sigismember(&mask, SIGTERM) ? "yes" : "no");
}

static void say_ready(void) {
    char line[160];
    snprintf(line, sizeof line, "ready pid=%ld ppid=%ld %s\n", (long)getpid(), (long)getppid(),
             inherited);
    say(line);
}

int main(int argc, char **argv) {
    read_inherited();
    if (argc == 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);

    if (argc == 2 && strcmp(argv[1], "default-term") == 0) {
        say_ready();
        for (;;)
            pause();
    }

    if (argc == 3 && strcmp(argv[1], "trap-term") == 0) {
        struct sigaction act;
        sigset_t term, old;
        memset(&act, 0, sizeof act);
        act.sa_handler = on_term;
        sigemptyset(&act.sa_mask);
        /* TERM stays blocked outside sigsuspend, so it cannot slip in between the check of
         * the flag and the wait: sigsuspend unblocks and waits in one step. */
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, &old);
        sigdelset(&old, SIGTERM);
        sigaction(SIGTERM, &act, NULL);
        say_ready();
        while (!got_term)
            sigsuspend(&old);
        say("caught SIGTERM\n");
        return atoi(argv[2]);
    }

    say("usage: testapp trap-term CODE | default-term | exit CODE\n");
    return 64;
}
