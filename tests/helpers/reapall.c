/* reapall CMD [ARGS...]
 *
 * Becomes a child subreaper, runs CMD, and reaps every process that ends up its child
 * (CMD and whatever CMD orphans), printing one line per process to stdout:
 * "PID exit CODE" or "PID signal N". Exits 0 once it has no child left.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: reapall CMD [ARGS...]\n");
        return 100;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        perror("reapall: PR_SET_CHILD_SUBREAPER");
        return 100;
    }
    pid_t cmd = fork();
    if (cmd < 0) {
        perror("reapall: fork");
        return 100;
    }
    if (cmd == 0) {
        execvp(argv[1], argv + 1);
        perror("reapall: exec");
        _exit(127);
    }
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (WIFEXITED(status))
            printf("%d exit %d\n", pid, WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            printf("%d signal %d\n", pid, WTERMSIG(status));
        fflush(stdout);
    }
    return 0;
}
