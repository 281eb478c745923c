/* benchrun-calibrate: the fixed calibration workloads of `benchrun host noise` (docs/cli.md).
 *
 *   benchrun-calibrate [--duration S] [--rep-ms MS] [--mem-mib MIB] MODE...
 *
 * MODE is cpu (an xorshift loop: no memory traffic, no system calls), mem (pointer chasing over
 * a random cyclic permutation of cache lines in a buffer larger than the last-level cache) or
 * syscall (getppid(2) through syscall(2), which no libc caches). The duration is shared equally
 * by the modes, run one after the other. Each mode first sizes one repetition to take about
 * --rep-ms (the work is then fixed for the whole mode), runs one unmeasured repetition, then
 * repeats until its share of the duration is spent. Output, one record a line (what
 * benchrun.noise.parse_calibration reads):
 *
 *   benchrun-calibrate 1                   format version
 *   mode <MODE> work <UNITS>               a mode starts; UNITS of work per repetition
 *   rep <MODE> <NANOSECONDS>               one repetition (CLOCK_MONOTONIC)
 *   end <MODE> <COUNT>                     the mode's repetitions, for a completeness check
 *
 * Static, libc only: it runs in the sandbox and in a microVM without anything else. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LINE 64 /* bytes per pointer-chasing node: one cache line each */

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static volatile uint64_t sink; /* keeps every loop's result alive */

static void cpu_work(uint64_t units) {
  uint64_t x = 88172645463325252ull ^ sink;
  for (uint64_t i = 0; i < units; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    __asm__ volatile("" : "+r"(x)); /* one dependent chain: the compiler may not fold it */
  }
  sink = x;
}

static void** chase_buf;
static size_t chase_nodes;
static void** chase_pos;

static int mem_setup(size_t mib) {
  chase_nodes = mib * 1024 * 1024 / LINE;
  if (chase_nodes < 2) return EINVAL;
  char* buf = aligned_alloc(LINE, chase_nodes * LINE);
  size_t* order = malloc(chase_nodes * sizeof(size_t));
  if (buf == NULL || order == NULL) return ENOMEM;
  for (size_t i = 0; i < chase_nodes; ++i) order[i] = i;
  uint64_t r = 0x9E3779B97F4A7C15ull;
  for (size_t i = chase_nodes - 1; i > 0; --i) { /* Sattolo: one cycle through every node */
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    size_t j = (size_t)(r % i);
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t i = 0; i < chase_nodes; ++i) {
    *(void**)(buf + order[i] * LINE) = buf + order[(i + 1) % chase_nodes] * LINE;
  }
  free(order);
  chase_buf = (void**)buf;
  chase_pos = (void**)buf;
  return 0;
}

static void mem_work(uint64_t units) {
  void** p = chase_pos;
  for (uint64_t i = 0; i < units; ++i) p = (void**)*p;
  chase_pos = p;
  sink = (uint64_t)(uintptr_t)p;
}

static void syscall_work(uint64_t units) {
  uint64_t acc = 0;
  for (uint64_t i = 0; i < units; ++i) acc += (uint64_t)syscall(SYS_getppid);
  sink = acc;
}

typedef void (*work_fn)(uint64_t);

static work_fn work_of(const char* mode) {
  if (strcmp(mode, "cpu") == 0) return cpu_work;
  if (strcmp(mode, "mem") == 0) return mem_work;
  if (strcmp(mode, "syscall") == 0) return syscall_work;
  return NULL;
}

/* The fastest of `tries` runs of `units` of work: preemption only ever adds time, so the
 * minimum is the machine's speed, not its noise. */
static uint64_t fastest(work_fn fn, uint64_t units, int tries) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < tries; ++i) {
    uint64_t t0 = now_ns();
    fn(units);
    uint64_t dt = now_ns() - t0;
    if (dt < best) best = dt;
  }
  return best == 0 ? 1 : best;
}

/* Units of work for one repetition of about target_ns: doubles until the fastest of three runs
 * takes a tenth of the target, scales linearly, then corrects once from the fastest of five
 * full-size runs (a repetition sized on a preempted run would be ten times too short). */
static uint64_t size_rep(work_fn fn, uint64_t target_ns) {
  uint64_t units = 64;
  while (fastest(fn, units, 3) < target_ns / 10 && units < (1ull << 40)) units *= 2;
  double scaled = (double)units * (double)target_ns / (double)fastest(fn, units, 3);
  units = scaled < 1 ? 1 : (uint64_t)scaled;
  scaled = (double)units * (double)target_ns / (double)fastest(fn, units, 5);
  return scaled < 1 ? 1 : (uint64_t)scaled;
}

static void usage(void) {
  fprintf(stderr,
          "usage: benchrun-calibrate [--duration S] [--rep-ms MS] [--mem-mib MIB] "
          "cpu|mem|syscall...\n");
}

int main(int argc, char** argv) {
  double duration = 3.0, rep_ms = 5.0;
  size_t mem_mib = 64;
  int first_mode = argc;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (i + 1 < argc && strcmp(a, "--duration") == 0) {
      duration = strtod(argv[++i], NULL);
    } else if (i + 1 < argc && strcmp(a, "--rep-ms") == 0) {
      rep_ms = strtod(argv[++i], NULL);
    } else if (i + 1 < argc && strcmp(a, "--mem-mib") == 0) {
      mem_mib = (size_t)strtoull(argv[++i], NULL, 10);
    } else if (a[0] == '-') {
      usage();
      return 2;
    } else {
      first_mode = i;
      break;
    }
  }
  if (first_mode >= argc || !(duration > 0) || !(rep_ms > 0) || mem_mib == 0) {
    usage();
    return 2;
  }
  for (int i = first_mode; i < argc; ++i) {
    if (work_of(argv[i]) == NULL) {
      fprintf(stderr, "benchrun-calibrate: unknown mode '%s' (cpu, mem or syscall)\n", argv[i]);
      return 2;
    }
    if (strcmp(argv[i], "mem") == 0 && chase_buf == NULL) {
      int err = mem_setup(mem_mib);
      if (err != 0) {
        fprintf(stderr, "benchrun-calibrate: mem: %zu MiB buffer: %s\n", mem_mib, strerror(err));
        return 1;
      }
    }
  }
  uint64_t share_ns = (uint64_t)(duration * 1e9 / (argc - first_mode));
  uint64_t target_ns = (uint64_t)(rep_ms * 1e6);
  printf("benchrun-calibrate 1\n");
  for (int i = first_mode; i < argc; ++i) {
    const char* mode = argv[i];
    work_fn fn = work_of(mode);
    uint64_t units = size_rep(fn, target_ns);
    printf("mode %s work %llu\n", mode, (unsigned long long)units);
    fn(units); /* one unmeasured repetition: caches, TLB and branch predictors settle */
    uint64_t start = now_ns(), count = 0;
    do {
      uint64_t t0 = now_ns();
      fn(units);
      uint64_t t1 = now_ns();
      printf("rep %s %llu\n", mode, (unsigned long long)(t1 - t0));
      ++count;
    } while (now_ns() - start < share_ns);
    printf("end %s %llu\n", mode, (unsigned long long)count);
    fflush(stdout);
  }
  return ferror(stdout) ? 1 : 0;
}
