/* pid1.c: benchrun-pid1, the minimal init of `--init` (docs/cli.md "--init"): PID 1 of a sandbox
 * run, bound read-only at /.benchrun-pid1 and exec'ed with the workload's argv after "--".
 *
 * The behaviour is tini's: the workload starts as its child in a process group of its own; the
 * signals a supervisor sends (TERM INT HUP USR1 USR2 QUIT) are forwarded to that group; every
 * process that ends up re-parented here (orphans, double-forked daemons) is reaped; when the
 * workload ends, this exits with its status (128+N when signal N killed it), and the kernel then
 * kills what is left of the pid namespace. Static, libc only: the image need not have a libc.
 *
 * Usage: benchrun-pid1 [-v] -- PROGRAM [ARGS...]   (-v: the reaped count on stderr at the end)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};

/* The exit status of a shell for a wait status: the code, or 128+N for signal N. */
static int exit_status_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int main(int argc, char** argv) {
  int verbose = 0, first = 1;
  while (first < argc && strcmp(argv[first], "--") != 0) {
    if (strcmp(argv[first], "-v") == 0) {
      verbose = 1;
    } else {
      fprintf(stderr,
              "benchrun-pid1: unknown option '%s' (usage: benchrun-pid1 [-v] -- PROGRAM "
              "[ARGS...])\n",
              argv[first]);
      return 127;
    }
    ++first;
  }
  if (first + 1 >= argc) {
    fprintf(stderr, "benchrun-pid1: no program (usage: benchrun-pid1 [-v] -- PROGRAM [ARGS...])\n");
    return 127;
  }
  char** prog = argv + first + 1;

  /* Everything we forward, and SIGCHLD, is taken synchronously with sigwaitinfo: blocked from
   * before the fork, so none is lost between fork and the wait loop. */
  sigset_t wanted, old;
  sigemptyset(&wanted);
  for (size_t i = 0; i < sizeof kForwarded / sizeof kForwarded[0]; ++i)
    sigaddset(&wanted, kForwarded[i]);
  sigaddset(&wanted, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &wanted, &old) != 0) {
    fprintf(stderr, "benchrun-pid1: sigprocmask: %s\n", strerror(errno));
    return 127;
  }
  /* The signals the kernel would discard for a namespace's init (no handler) are blocked and
   * waited for, which counts as handled: a supervisor's SIGTERM reaches us. SIGTTIN/SIGTTOU: a
   * background group reading the terminal must not stop us. */
  signal(SIGTTIN, SIG_IGN);
  signal(SIGTTOU, SIG_IGN);

  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "benchrun-pid1: fork: %s\n", strerror(errno));
    return 127;
  }
  if (child == 0) {
    sigset_t none;
    sigemptyset(&none);
    signal(SIGTTIN, SIG_DFL);
    signal(SIGTTOU, SIG_DFL);
    if (setpgid(0, 0) != 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0) {
      fprintf(stderr, "benchrun-pid1: setting up the workload: %s\n", strerror(errno));
      _exit(127);
    }
    (void)old;
    execvp(prog[0], prog);
    int err = errno;
    fprintf(stderr, "benchrun-pid1: exec %s: %s\n", prog[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  (void)setpgid(child, child); /* both sides: whichever runs first, the group exists */

  unsigned long reaped = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&wanted, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "benchrun-pid1: sigwaitinfo: %s\n", strerror(errno));
      return 127;
    }
    if (sig != SIGCHLD) {
      /* To the workload's group; when the leader is gone but the group is not, kill(-pgid)
       * still reaches the rest; ESRCH: nobody left to tell. */
      if (kill(-child, sig) != 0 && errno == ESRCH) (void)kill(child, sig);
      continue;
    }
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid != child) {
        ++reaped;
        continue;
      }
      if (verbose) fprintf(stderr, "benchrun-pid1: reaped %lu orphans\n", reaped);
      return exit_status_of(status);
    }
  }
}
