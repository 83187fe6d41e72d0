/* N-API addon returning the destination a TCP connection had before iptables/nftables NAT
 * redirected it to the agent, read from conntrack via getsockopt(SO_ORIGINAL_DST). */
#define NAPI_VERSION 8
#include <node_api.h>

#include "addon.h"
#include "system_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Both constants live in kernel headers (linux/netfilter_ipv4.h and
 * linux/netfilter_ipv6/ip6_tables.h) that clash with the libc socket headers when included
 * together, so the stable ABI values are spelled out here. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* The message names the fd and the failing call, so a log line alone says what went wrong. */
static void throw_errno(napi_env env, int fd, int err, const char *syscall, const char *detail) {
  char message[256];
  snprintf(message, sizeof message, "originalDestination(fd %d): %s%s failed: %s (%s)", fd, syscall,
           detail, errno_name(err), strerror(err));
  throw_system_error(env, err, syscall, message);
}

static napi_value make_result(napi_env env, const char *address, unsigned port, int family) {
  napi_value result, address_value, port_value, family_value;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &address_value) != napi_ok ||
      napi_create_uint32(env, port, &port_value) != napi_ok ||
      napi_create_int32(env, family, &family_value) != napi_ok ||
      napi_set_named_property(env, result, "address", address_value) != napi_ok ||
      napi_set_named_property(env, result, "port", port_value) != napi_ok ||
      napi_set_named_property(env, result, "family", family_value) != napi_ok) {
    napi_throw_error(env, NULL, "originalDestination: could not build the result object");
    return NULL;
  }
  return result;
}

napi_value original_destination(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;

  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  double fd_number = -1;
  if (type != napi_number || napi_get_value_double(env, argv[0], &fd_number) != napi_ok ||
      fd_number < 0 || fd_number > 2147483647.0 || fd_number != (double)(int)fd_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "originalDestination(fd): fd must be a non-negative integer file descriptor");
    return NULL;
  }
  int fd = (int)fd_number;

  /* The socket's own family decides which conntrack table to ask: an IPv4 client accepted on a
   * dual-stack (::) listener has an AF_INET6 socket but an IPv4 conntrack entry. */
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) {
    throw_errno(env, fd, errno, "getsockname", "");
    return NULL;
  }
  int ask_ipv4 = local.ss_family == AF_INET;
  if (local.ss_family == AF_INET6) {
    const struct sockaddr_in6 *local6 = (const struct sockaddr_in6 *)&local;
    ask_ipv4 = IN6_IS_ADDR_V4MAPPED(&local6->sin6_addr);
  } else if (local.ss_family != AF_INET) {
    throw_errno(env, fd, EAFNOSUPPORT, "getsockname", " (not an IPv4 or IPv6 socket)");
    return NULL;
  }

  char text[INET6_ADDRSTRLEN];
  if (ask_ipv4) {
    struct sockaddr_in dst;
    socklen_t len = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      throw_errno(env, fd, errno, "getsockopt", "(SOL_IP, SO_ORIGINAL_DST)");
      return NULL;
    }
    if (inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text) == NULL) {
      throw_errno(env, fd, errno, "inet_ntop", "(AF_INET)");
      return NULL;
    }
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }

  struct sockaddr_in6 dst6;
  socklen_t len6 = sizeof dst6;
  memset(&dst6, 0, sizeof dst6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst6, &len6) != 0) {
    throw_errno(env, fd, errno, "getsockopt", "(SOL_IPV6, IP6T_SO_ORIGINAL_DST)");
    return NULL;
  }
  if (inet_ntop(AF_INET6, &dst6.sin6_addr, text, sizeof text) == NULL) {
    throw_errno(env, fd, errno, "inet_ntop", "(AF_INET6)");
    return NULL;
  }
  return make_result(env, text, ntohs(dst6.sin6_port), 6);
}
