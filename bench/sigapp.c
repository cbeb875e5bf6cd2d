/* bench/sigapp.c: the app for the signal-forwarding benchmark.
 *
 * Installs a SIGUSR1 handler, then writes one 8-byte record to stdout: its pid (the
 * "ready" record). Each SIGUSR1 makes the handler write one 8-byte record: the
 * CLOCK_MONOTONIC time in ns at which the handler ran. clock_gettime and write are
 * async-signal-safe. SIGTERM keeps its default action and ends the app.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static void on_usr1(int sig) {
    (void)sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    (void)!write(STDOUT_FILENO, &ns, sizeof ns);
}

int main(void) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the init under test */
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int64_t pid = getpid();
    if (write(STDOUT_FILENO, &pid, sizeof pid) != sizeof pid)
        return 3;
    for (;;)
        pause();
}
