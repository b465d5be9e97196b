/* plain.c -- a program without the refscope runtime: its core has no registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    puts("aborting");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "abort") != 0)
        return 0;
    abort();
}
