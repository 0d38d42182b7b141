/* test-repro: the recipe builder's own test package (cargo xtask recipes-test). */
#include <stdio.h>

int main(void) {
    puts("test-repro: unpatched");
    return 0;
}
