/* probe.c -- meson's check that clang can build a libFuzzer harness with
 * ASan and UBSan (Debian: clang and libclang-rt-14-dev). Never run. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return size > 0 && data[0] == 'x';
}
