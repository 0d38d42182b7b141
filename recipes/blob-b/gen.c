/* Writes LENGTH deterministic bytes that no compressor can shrink (xorshift64*),
 * seeded by NAME: `gen NAME LENGTH`. A build-time tool, compiled with $HOSTCC. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen NAME LENGTH\n");
        return 2;
    }
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (const unsigned char *p = (const unsigned char *)argv[1]; *p; p++)
        state = (state ^ *p) * 0x0100000001b3ULL;
    state |= 1;
    unsigned long long left = strtoull(argv[2], NULL, 10);
    while (left > 0) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        uint64_t word = state * 0x2545f4914f6cdd1dULL;
        for (int i = 0; i < 8 && left > 0; i++, left--)
            putchar((int)((word >> (8 * i)) & 0xff));
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
