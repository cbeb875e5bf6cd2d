/* bench/orphans.c: the app for the orphan-reaping benchmark.
 *
 * Run it as the app of an init that is PID 1 of a fresh PID namespace with its own
 * /proc (unshare --pid --fork --mount-proc INIT -- orphans N). It creates N orphans:
 * for each, it starts a child that forks a grandchild and exits at once; it waits for
 * that child (so at most two transient processes exist at a time), and the grandchild
 * exits immediately. The grandchild is reparented to PID 1 when its parent dies (alive
 * or already a zombie: the kernel then sends PID 1 the SIGCHLD), so it is the init's to
 * reap. To create orphans fast, the child is a clone(CLONE_VM|CLONE_VFORK) on its own
 * stack (no copy of our address space; we sleep until it exits) and the grandchild a raw
 * fork syscall that calls exit_group at once; fork-rate limits are retried on EAGAIN.
 *
 * A sampler thread scans /proc all along and counts zombies whose parent is PID 1. The
 * run ends when all N were created and the namespace holds nothing but PID 1 and this
 * process: no zombie, no grandchild still running. It prints one line:
 *   elapsed_ms=... create_ms=... tail_ms=... max_zombies=... left=... samples=...
 *   forks=... fork_retries=... timed_out=0|1 init_cpu_ms=...
 * init_cpu_ms is the CPU time (user + system) PID 1 has used so far, from /proc/1/stat.
 * elapsed = first fork -> zombies reached 0; tail = last fork -> zombies reached 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long deadline_ns = 60LL * 1000000000LL; /* argv[2] seconds, default 60 */

static atomic_int creating_done;
static atomic_llong t_first_fork, t_last_fork;
static long long t_zero;
static int max_zombies, left = -1, samples, timed_out;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Counts zombies whose parent is PID 1, and other live processes besides PID 1 and us. */
static void scan(int *zombies, int *others) {
    *zombies = 0;
    *others = 0;
    DIR *d = opendir("/proc");
    if (!d) {
        perror("orphans: opendir /proc");
        exit(3);
    }
    pid_t self = getpid();
    struct dirent *e;
    char path[64], buf[512];
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == 1 || pid == self)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* reaped meanwhile */
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (state == 'Z' && ppid == 1)
            (*zombies)++;
        else
            (*others)++;
    }
    closedir(d);
}

static void *sampler(void *arg) {
    (void)arg;
    long long start = now_ns();
    for (;;) {
        int z, o;
        scan(&z, &o);
        samples++;
        if (z > max_zombies)
            max_zombies = z;
        if (atomic_load(&creating_done) && z == 0 && o == 0) {
            t_zero = now_ns();
            left = 0;
            return NULL;
        }
        if (now_ns() - start > deadline_ns) {
            left = z;
            timed_out = 1;
            return NULL;
        }
        struct timespec pause = {0, 500000}; /* 0.5 ms between scans */
        nanosleep(&pause, NULL);
    }
}

/* CPU time of PID 1 in ms (utime + stime, fields 14 and 15 of /proc/1/stat), or -1. */
static long init_cpu_ms(void) {
    char buf[1024];
    int fd = open("/proc/1/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long utime, stime;
    /* after ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
       cmajflt utime(14) stime(15) */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static char child_stack[64 * 1024] __attribute__((aligned(16)));

/* The child: shares our memory, runs on child_stack while we are suspended (vfork). */
static int child(void *arg) {
    (void)arg;
    /* A raw fork: no libc bookkeeping in memory that we share with our parent. */
    long g = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (g == 0)
        syscall(SYS_exit_group, 0L);
    return g < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (argc > 2)
        deadline_ns = atoll(argv[2]) * 1000000000LL;
    if (getppid() != 1)
        fprintf(stderr, "orphans: warning: my parent is not PID 1 (ppid %d)\n", getppid());
    pthread_t th;
    if (pthread_create(&th, NULL, sampler, NULL) != 0) {
        perror("orphans: pthread_create");
        return 3;
    }
    int retries = 0, made = 0;
    long long start = now_ns();
    atomic_store(&t_first_fork, start);
    while (made < n) {
        if (now_ns() - start > deadline_ns)
            break;
        pid_t c = clone(child, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                        NULL);
        if (c < 0) {
            if (errno != EAGAIN) {
                perror("orphans: clone");
                return 3;
            }
            retries++;
            usleep(1000);
            continue;
        }
        int status = 0;
        while (waitpid(c, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            made++;
        } else {
            retries++; /* the grandchild's fork failed: try again */
            usleep(1000);
        }
    }
    atomic_store(&t_last_fork, now_ns());
    atomic_store(&creating_done, 1);
    pthread_join(th, NULL);
    long long t0 = atomic_load(&t_first_fork), tl = atomic_load(&t_last_fork);
    long long tz = t_zero ? t_zero : now_ns();
    printf("elapsed_ms=%.1f create_ms=%.1f tail_ms=%.2f max_zombies=%d left=%d samples=%d "
           "forks=%d fork_retries=%d timed_out=%d init_cpu_ms=%ld\n",
           (tz - t0) / 1e6, (tl - t0) / 1e6, (tz - tl) / 1e6, max_zombies, left, samples, made,
           retries, timed_out || made < n, init_cpu_ms());
    fflush(stdout);
    return timed_out || made < n ? 1 : 0;
}
