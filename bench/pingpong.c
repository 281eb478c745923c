/* pingpong.c: N one-byte round trips between two processes over two pipes (about 2N context
 * switches): the counters' worst case, a cost per context switch and none per instruction. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int a[2], b[2];
  char c = 0;
  if (pipe(a) || pipe(b)) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    for (long i = 0; i < n; i++)
      if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1) _exit(1);
    _exit(0);
  }
  for (long i = 0; i < n; i++)
    if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1) return 1;
  int st;
  waitpid(pid, &st, 0);
  return st;
}
