// fidelity_loops.c: four self-timing loops for bench/backends_bench.py (static; prints seconds).
//   cpu      integer arithmetic only (no syscalls, no memory traffic)
//   syscall  1M getppid() (each a real syscall: glibc does not cache it)
//   file     write + fsync-free read back of a 4 MiB file in /tmp, 64 KiB blocks, 16 times
//   mem      stream a 64 MiB buffer (memset + sum), 8 passes: memory bandwidth
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "cpu";
  volatile uint64_t sink = 0;
  double t0 = now();
  if (!strcmp(mode, "cpu")) {
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < 60000000; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    sink = x;
  } else if (!strcmp(mode, "syscall")) {
    for (long i = 0; i < 1000000; ++i) sink += (uint64_t)syscall(SYS_getppid);
  } else if (!strcmp(mode, "file")) {
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    for (int r = 0; r < 16; ++r) {
      int fd = open("/tmp/fidelity.dat", O_CREAT | O_TRUNC | O_RDWR, 0600);
      if (fd < 0) return 2;
      for (int i = 0; i < 64; ++i)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return 3;
      lseek(fd, 0, SEEK_SET);
      while (read(fd, buf, sizeof buf) > 0) sink += (uint64_t)buf[0];
      close(fd);
    }
    unlink("/tmp/fidelity.dat");
  } else if (!strcmp(mode, "mem")) {
    size_t n = (size_t)64 << 20;
    unsigned char* p = malloc(n);
    if (!p) return 4;
    for (int pass = 0; pass < 8; ++pass) {
      memset(p, pass, n);
      uint64_t s = 0;
      for (size_t i = 0; i < n; i += 64) s += p[i];
      sink += s;
    }
    free(p);
  } else {
    return 1;
  }
  printf("%.6f\n", now() - t0);
  return (int)(sink & 0);
}
