/*
 * cvm-gate: PID 1 of a CVM until the supervisor releases it.
 *
 *   cvm-gate hold PATH [ARGS...]  wait to be released. SIGUSR1: exec PATH so
 *                                 the real init keeps PID 1 (the supervisor
 *                                 hands the container's cgroup directories to
 *                                 its remapped root in between; systemd
 *                                 started before that fails with "Failed to
 *                                 create /init.scope control group").
 *                                 SIGUSR2: become the reaper (the image has
 *                                 no usable /sbin/init).
 *   cvm-gate reap                 the reaper: the minimal init that reaps
 *                                 orphans and exits on SIGTERM or SIGRTMIN+3
 *                                 (the stop signal of a CVM). It names itself
 *                                 "cvm-reaper" so the supervisor can tell.
 *
 * A signal from outside a PID namespace reaches its init only when init has a
 * handler, so a release sent before the handler exists is lost: the supervisor
 * repeats it until /proc/PID/comm no longer reads "cvm-gate".
 * Built with gcc -static at first use; no libc beyond what -static links.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A gate nobody releases (the supervisor died mid-build) gives up. */
#define HOLD_SECONDS 600

static void ignore(int sig) { (void)sig; }

static void handle(int sig) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = ignore;
  sigaction(sig, &action, NULL);
}

static int reap(void);

static int hold(char **argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGRTMIN + 3);
  sigprocmask(SIG_BLOCK, &set, NULL);
  handle(SIGUSR1);
  handle(SIGUSR2);
  handle(SIGTERM);
  handle(SIGINT);
  handle(SIGRTMIN + 3);
  struct timespec timeout = {HOLD_SECONDS, 0};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &timeout);
    if (sig == SIGUSR1) break;
    if (sig == SIGUSR2) {
      sigprocmask(SIG_UNBLOCK, &set, NULL);
      return reap();
    }
    if (sig < 0 && errno == EINTR) continue;
    if (sig < 0) {
      fprintf(stderr, "cvm-gate: not released within %d s\n", HOLD_SECONDS);
      return 1;
    }
    return 0; /* stopped before release */
  }
  /* The real init starts with default dispositions and nothing blocked. */
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  signal(SIGUSR1, SIG_DFL);
  signal(SIGUSR2, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGRTMIN + 3, SIG_DFL);
  execv(argv[0], argv);
  fprintf(stderr, "cvm-gate: exec %s: %s\n", argv[0], strerror(errno));
  return 127;
}

static int reap(void) {
  prctl(PR_SET_NAME, "cvm-reaper", 0, 0, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGRTMIN + 3);
  sigprocmask(SIG_BLOCK, &set, NULL);
  handle(SIGCHLD);
  handle(SIGTERM);
  handle(SIGINT);
  handle(SIGRTMIN + 3);
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
      continue;
    }
    if (sig < 0) continue;
    return 0;
  }
}

int main(int argc, char **argv) {
  prctl(PR_SET_NAME, "cvm-gate", 0, 0, 0);
  if (argc >= 3 && strcmp(argv[1], "hold") == 0) return hold(argv + 2);
  if (argc == 2 && strcmp(argv[1], "reap") == 0) return reap();
  fprintf(stderr, "usage: cvm-gate hold PATH [ARGS...] | cvm-gate reap\n");
  return 2;
}
