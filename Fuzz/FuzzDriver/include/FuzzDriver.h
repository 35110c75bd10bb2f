#ifndef SVCPLANE_FUZZ_DRIVER_H
#define SVCPLANE_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer (from -sanitize=fuzzer) with the process arguments on one test function.
int svcplane_fuzz_main(int argc, char **argv, int (*test_one_input)(const uint8_t *data, size_t size));
#endif
