/* cpuloop.c: a fixed CPU-bound workload that times itself (CLOCK_MONOTONIC) and prints seconds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000000ull;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  volatile uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < n; ++i) {  /* xorshift: no memory traffic, no syscalls */
    uint64_t v = x;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    x = v;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}
