"""Finding 1: socket families a network namespace does not isolate, and io_uring.

A network namespace isolates AF_INET/AF_INET6/AF_UNIX (abstract)/NETLINK_ROUTE state, but not
AF_VSOCK (the host's port space, and the hypervisor at CID 2 when the host is a VM), nor is AF_ALG,
AF_PACKET (needs CAP_NET_RAW, but is attack surface), AF_KEY or the other netlink protocols
something a benchmark needs. The attacker's program below tries each and reports the errno; the
seccomp policy must answer EAFNOSUPPORT (and ENOSYS for io_uring) on both backends, while the
families a benchmark uses keep working. One run per backend checks everything (VM runs are slow).
"""

from __future__ import annotations

import pytest

from security.conftest import BACKENDS

PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif

static void report(const char *what, long rc) {
  if (rc < 0) printf("%s %s\n", what, strerrorname_np(errno));
  else printf("%s ok\n", what);
}

static long try_socket(int family, int type, int protocol) {
  int fd = socket(family, type | SOCK_CLOEXEC, protocol);
  if (fd >= 0) close(fd);
  return fd;
}

int main(void) {
  /* AF_VSOCK: socket + bind to any CID on a fixed port (would block that port on the host). */
  int v = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (v < 0) {
    report("vsock", -1);
  } else {
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 47011};
    report("vsock", bind(v, (struct sockaddr *)&a, sizeof a));
    close(v);
  }
  report("alg", try_socket(AF_ALG, SOCK_SEQPACKET, 0));
  report("packet", try_socket(AF_PACKET, SOCK_DGRAM, 0));
  report("key", try_socket(AF_KEY, SOCK_RAW, 2 /* PF_KEY_V2 */));
  report("netlink_audit", try_socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
  report("netlink_uevent", try_socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT));
  report("io_uring_setup", syscall(SYS_io_uring_setup, 1, (void *)0));
  /* What a benchmark needs. */
  report("unix", try_socket(AF_UNIX, SOCK_STREAM, 0));
  int sv[2];
  long rc = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  if (rc == 0) { close(sv[0]); close(sv[1]); }
  report("unix_pair", rc);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) {
    report("inet", -1);
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    report("inet", bind(s, (struct sockaddr *)&a, sizeof a));
    close(s);
  }
  report("inet6", try_socket(AF_INET6, SOCK_DGRAM, 0));
  report("netlink_route", try_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
  struct if_nameindex *idx = if_nameindex(); /* glibc: an RTM_GETLINK dump on NETLINK_ROUTE */
  report("if_nameindex", idx ? 0 : -1);
  if (idx) if_freenameindex(idx);
  return 0;
}
"""

DENIED = {
    "vsock": "EAFNOSUPPORT",
    "alg": "EAFNOSUPPORT",
    "packet": "EAFNOSUPPORT",
    "key": "EAFNOSUPPORT",
    "netlink_audit": "EAFNOSUPPORT",
    "netlink_uevent": "EAFNOSUPPORT",
    "io_uring_setup": "ENOSYS",
}
ALLOWED = ["unix", "unix_pair", "inet", "inet6", "netlink_route", "if_nameindex"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_isolated_socket_families_and_no_io_uring(attacker_image, attack, backend):
    image = attacker_image({"sockets": PROBE})
    r = attack(image, ["/attack/sockets"], backend=backend)
    assert r.exit_code == 0, r.stderr
    seen = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    assert {k: seen.get(k) for k in DENIED} == DENIED
    assert {k: seen.get(k) for k in ALLOWED} == {k: "ok" for k in ALLOWED}
