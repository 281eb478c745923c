/* vglaunch.c: benchrun-vglaunch, the static stand-in for valgrind(1) inside a run's root
 * (docs/instructions.md, cpp/src/run/instructions.hpp).
 *
 * Valgrind's tool executables are static, but they refuse to start unless VALGRIND_LAUNCHER is
 * set, and for every exec they trace (--trace-children=yes) they re-execute that launcher with
 * their own options in front of the new program. Debian's launcher is dynamically linked and the
 * image need not have a libc, so the sandbox binds this one at /.benchrun-tools/launch, next to
 * the host's tool directory at /.benchrun-tools/valgrind. Like valgrind(1) it only sets the
 * environment and execs the tool with its arguments unchanged; unlike it, the tool is fixed
 * (callgrind), so the workload's own arguments are never read here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOOL_ROOT "/.benchrun-tools"

int main(int argc, char** argv) {
  (void)argc;
  if (setenv("VALGRIND_LAUNCHER", TOOL_ROOT "/launch", 1) != 0 ||
      setenv("VALGRIND_LIB", TOOL_ROOT "/valgrind", 1) != 0) {
    fprintf(stderr, "benchrun-vglaunch: setenv: %s\n", strerror(errno));
    return 127;
  }
  execv(TOOL_ROOT "/valgrind/callgrind-amd64-linux", argv);
  fprintf(stderr, "benchrun-vglaunch: exec " TOOL_ROOT "/valgrind/callgrind-amd64-linux: %s\n",
          strerror(errno));
  return 127;
}
