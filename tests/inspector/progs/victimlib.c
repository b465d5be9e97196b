/* victimlib.c -- a shared library of the victim: a global object pointer
 * that the target layer must find through NT_FILE and the library's bias. */
#include "victim.h"

rc_object *lib_root;
long lib_magic = 0x11b5eedL;

void lib_set(rc_object *o)
{
    lib_root = o;
}
