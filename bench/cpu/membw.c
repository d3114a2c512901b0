// Memory read bandwidth: THREADS threads each sum their own slice of a MIB-mebibyte buffer (much larger
// than the last-level cache), REPS times; prints one GB/s (1e9 bytes) figure per repetition. This is
// the traffic a decode step makes: weights streamed once from DRAM, read only.
//   usage: membw MIB THREADS REPS
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: membw MIB THREADS REPS\n");
    return 2;
  }
  const size_t n = (size_t)atol(argv[1]) * 1024 * 1024 / sizeof(uint64_t);
  const int threads = atoi(argv[2]), reps = atoi(argv[3]);
  uint64_t* a = aligned_alloc(64, n * sizeof(uint64_t));
  if (!a || threads < 1 || reps < 1) {
    fprintf(stderr, "membw: bad arguments or out of memory\n");
    return 1;
  }
  omp_set_num_threads(threads);
  // Written by the thread that later reads the same slice (schedule(static) both times).
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = i;
  uint64_t checksum = 0;
  for (int r = 0; r < reps; ++r) {
    uint64_t s = 0;
    const double t0 = omp_get_wtime();
#pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; ++i) s += a[i];
    const double t = omp_get_wtime() - t0;
    checksum += s;  // used, so the loop is not optimised away
    printf("%.3f\n", (double)(n * sizeof(uint64_t)) / t / 1e9);
  }
  fprintf(stderr, "membw: checksum %llu\n", (unsigned long long)checksum);
  free(a);
  return 0;
}
