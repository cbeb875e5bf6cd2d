/* rtcount OFFSET COUNT
 *
 * Blocks SIGRTMIN+OFFSET, prints "ready", then takes the queued instances of that signal
 * one by one with sigwaitinfo(2). Once it has taken COUNT of them it prints "count=COUNT"
 * and exits 0. Real-time signals queue: every kill(2) is one instance, so an init that
 * forwards each signal it gets delivers them all (tini and dumb-init do).
 * A safety net: SIGALRM (default action) ends it after 60 s if nobody else does.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: rtcount OFFSET COUNT\n");
        return 100;
    }
    int sig = SIGRTMIN + atoi(argv[1]);
    long want = atol(argv[2]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        perror("rtcount: sigprocmask");
        return 100;
    }
    alarm(60);
    printf("ready\n");
    fflush(stdout);
    long got = 0;
    while (got < want) {
        if (sigwaitinfo(&set, NULL) == sig) got++;
    }
    printf("count=%ld\n", got);
    fflush(stdout);
    return 0;
}
