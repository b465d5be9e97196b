/* plain.c -- a program without the refscope runtime: its core has no
 * registry (catalogue entry "core of a program that does not use refscope"). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    puts("aborting");
    fflush(stdout);
    abort();
}
