/* The nonewprivs test image's program: installed setuid root, it reports the
 * effective uid it runs with. A container started as uid 1000 prints 0 when
 * the kernel honoured the setuid bit and 1000 when no_new_privs stopped it
 * (execve ignores set-user-ID bits once PR_SET_NO_NEW_PRIVS is set). Built
 * with gcc -static so the image needs no libc. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("Effective uid: %d\n", (int)geteuid());
    return fflush(stdout) == 0 ? 0 : 1;
}
