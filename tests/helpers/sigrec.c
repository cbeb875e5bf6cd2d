/* sigrec LOG LABEL EXIT_SIG
 *
 * Records every signal it receives (every catchable standard one but SIGCHLD and SIGALRM,
 * fault signals and SIGPIPE included, and SIGRTMIN+2), one line "LABEL NAME" appended to
 * LOG (O_APPEND, one write(2) per line, so several recorders can share a LOG). A fault
 * signal sent with kill(2) is only a message: the handler records it and returns. Writes "LABEL ready" once its
 * handlers are installed. Exits 0 right after recording EXIT_SIG (a name such as TERM, or
 * "none"). Handlers block each other, so signals are recorded in delivery order.
 * SIGRTMIN+2 is recorded as "RTMIN+2" (real-time numbers are not constants in C).
 * A safety net: SIGALRM (default action) ends it after 60 s if nobody else does.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; int sig; } SIGNALS[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},
    {"TERM", SIGTERM}, {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR},   {"SYS", SIGSYS},   {"CONT", SIGCONT},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},
};
#define NSIGNALS (sizeof SIGNALS / sizeof SIGNALS[0])

static int log_fd = -1;
static const char *label = "";
static int exit_sig = 0;

static void record(const char *what) {
    char line[256];
    size_t n = strlen(label);
    size_t m = strlen(what);
    if (n + m + 2 > sizeof line) _exit(101);
    memcpy(line, label, n);
    line[n] = ' ';
    memcpy(line + n + 1, what, m);
    line[n + 1 + m] = '\n';
    if (write(log_fd, line, n + m + 2) != (ssize_t)(n + m + 2)) _exit(102);
}

static void on_signal(int sig) {
    for (size_t i = 0; i < NSIGNALS; i++)
        if (SIGNALS[i].sig == sig) record(SIGNALS[i].name);
    if (sig == SIGRTMIN + 2) record("RTMIN+2");
    if (sig == exit_sig) _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: sigrec LOG LABEL EXIT_SIG\n");
        return 100;
    }
    log_fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        perror("sigrec: open");
        return 100;
    }
    label = argv[2];
    if (strcmp(argv[3], "none") != 0) {
        for (size_t i = 0; i < NSIGNALS; i++)
            if (strcmp(SIGNALS[i].name, argv[3]) == 0) exit_sig = SIGNALS[i].sig;
        if (!exit_sig) {
            fprintf(stderr, "sigrec: unknown signal %s\n", argv[3]);
            return 100;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIGNALS; i++) sigaddset(&sa.sa_mask, SIGNALS[i].sig);
    sigaddset(&sa.sa_mask, SIGRTMIN + 2);
    for (size_t i = 0; i < NSIGNALS; i++)
        if (sigaction(SIGNALS[i].sig, &sa, NULL) != 0) {
            perror("sigrec: sigaction");
            return 100;
        }
    if (sigaction(SIGRTMIN + 2, &sa, NULL) != 0) {
        perror("sigrec: sigaction");
        return 100;
    }
    /* The handlers are in place: unblock whatever the parent may have blocked. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGALRM, SIG_DFL);
    alarm(60);
    record("ready");
    for (;;) pause();
}
