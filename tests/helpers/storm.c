/* storm COUNT EXIT_CODE
 *
 * Creates COUNT orphans: each time it forks a child that forks a grandchild and exits at
 * once; the child is reaped here, so the grandchild (which exits at once too) is
 * reparented to the init of the PID namespace (or the nearest subreaper), which must reap
 * it. Then it polls /proc for zombies (state 'Z') for at most 10 s until none is left, and
 * prints "orphans=COUNT zombies=Z" with the last count seen. Exits with EXIT_CODE.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int count_zombies(void) {
    DIR *proc = opendir("/proc");
    if (!proc) {
        perror("storm: /proc");
        exit(100);
    }
    int zombies = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        if (!isdigit((unsigned char)entry->d_name[0])) continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *close = strrchr(buf, ')');
        if (close && close[1] == ' ' && close[2] == 'Z') zombies++;
    }
    closedir(proc);
    return zombies;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: storm COUNT EXIT_CODE\n");
        return 100;
    }
    int count = atoi(argv[1]);
    int code = atoi(argv[2]);
    for (int i = 0; i < count; i++) {
        pid_t child = fork();
        if (child < 0) {
            perror("storm: fork");
            return 100;
        }
        if (child == 0) {
            pid_t grandchild = fork();
            _exit(grandchild < 0 ? 1 : 0);
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "storm: child %d failed\n", i);
            return 100;
        }
    }
    int zombies = count_zombies();
    for (int tries = 0; zombies != 0 && tries < 1000; tries++) {
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
        zombies = count_zombies();
    }
    printf("orphans=%d zombies=%d\n", count, zombies);
    fflush(stdout);
    return code;
}
