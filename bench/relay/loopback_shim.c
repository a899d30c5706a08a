/* Preloaded into the benchmark's Janus process only (LD_PRELOAD), never into anything else.
 *
 * Janus 1.1.x (and libnice under it) skip interfaces flagged IFF_LOOPBACK when gathering ICE host
 * candidates, so on a machine whose only usable address is 127.0.0.1 Janus offers no candidate at all
 * and no peer can connect. The benchmark must keep every packet on 127.0.0.0/8, so instead of giving
 * Janus a real interface this clears the loopback flag on `lo` in what getifaddrs() returns: Janus
 * then gathers 127.0.0.1 like any other address. Compiled by bench/relay/janus.py into a temporary
 * folder at bench time; the binary is never committed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

int getifaddrs(struct ifaddrs **ifap) {
    static int (*real_getifaddrs)(struct ifaddrs **) = NULL;
    if (real_getifaddrs == NULL) {
        real_getifaddrs = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
        if (real_getifaddrs == NULL) {
            return -1;
        }
    }
    int result = real_getifaddrs(ifap);
    if (result != 0) {
        return result;
    }
    for (struct ifaddrs *ifa = *ifap; ifa != NULL; ifa = ifa->ifa_next) {
        if (ifa->ifa_name != NULL && strcmp(ifa->ifa_name, "lo") == 0) {
            ifa->ifa_flags &= ~IFF_LOOPBACK;
        }
    }
    return 0;
}
