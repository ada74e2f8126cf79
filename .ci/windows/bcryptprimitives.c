/* bcryptprimitives.dll for Wine 8, which has none.
 *
 * Rust's standard library (1.78 and later) takes its random bytes from ProcessPrng in
 * this Windows 10 DLL; wheels built with it (pydantic-core, jiter: the openai SDK the
 * tests use) fail to import without it. This forwards to RtlGenRandom, which Wine has.
 * Used only by the Windows test stage under Wine; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom, advapi32 */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
