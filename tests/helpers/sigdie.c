/* sigdie SIGNUM now|term [READY]
 *
 * Dies of signal SIGNUM (a number: real-time signals have no constant names in C), with
 * its default action restored and nothing blocked: "now" kills itself at once; "term"
 * waits and kills itself with SIGNUM when a SIGTERM arrives (so its parent sees a death
 * by SIGNUM, never by SIGTERM). Once ready, writes its pid to READY if given. Exits 100
 * on bad usage or if it somehow survives. A safety net: SIGALRM (default action) ends it
 * after 60 s if nothing else does.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int dying_sig;

static void on_term(int sig) {
    (void)sig;
    kill(getpid(), dying_sig);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || (strcmp(argv[2], "now") != 0 && strcmp(argv[2], "term") != 0)) {
        fprintf(stderr, "usage: sigdie SIGNUM now|term [READY]\n");
        return 100;
    }
    dying_sig = atoi(argv[1]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    if (sigaction(dying_sig, &sa, NULL) != 0) {
        perror("sigdie: sigaction");
        return 100;
    }
    if (strcmp(argv[2], "term") == 0) {
        sa.sa_handler = on_term;
        if (sigaction(SIGTERM, &sa, NULL) != 0) {
            perror("sigdie: sigaction");
            return 100;
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGALRM, SIG_DFL);
    alarm(60);
    if (argc == 4) {
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
        if (fd < 0 || write(fd, line, n) != n) {
            perror("sigdie: ready file");
            return 100;
        }
        close(fd);
    }
    if (strcmp(argv[2], "now") == 0) kill(getpid(), dying_sig);
    for (;;) pause();
}
