/* Owner uid of a local TCP socket, found by its exact 4-tuple with one inet_diag netlink request
 * (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP): the kernel looks the socket up in its hash tables, so
 * the cost does not grow with the number of sockets, unlike reading /proc/net/tcp. */
#define NAPI_VERSION 8
#include <node_api.h>

#include "addon.h"
#include "system_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct diag_request {
  struct nlmsghdr header;
  struct inet_diag_req_v2 body;
};

/* An answer is one inet_diag_msg (plus attributes we do not ask for) or one error message. */
#define ANSWER_BYTES 1024

static void throw_diag_error(napi_env env, int err, const char *syscall) {
  char message[256];
  snprintf(message, sizeof message, "socketUid: inet_diag %s failed: %s (%s)", syscall, errno_name(err),
           strerror(err));
  throw_system_error(env, err, syscall, message);
}

static int read_port(napi_env env, napi_value value, const char *name, uint16_t *port) {
  napi_valuetype type = napi_undefined;
  double number = -1;
  napi_typeof(env, value, &type);
  if (type != napi_number || napi_get_value_double(env, value, &number) != napi_ok || number < 0 ||
      number > 65535 || number != (double)(int)number) {
    char message[128];
    snprintf(message, sizeof message, "socketUid: %s must be an integer from 0 to 65535", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return 0;
  }
  *port = htons((uint16_t)number);
  return 1;
}

/* Parses an address of `family` into the 16-byte sockid field (IPv4 uses the first word). */
static int read_address(napi_env env, napi_value value, int family, const char *name, __be32 out[4]) {
  char text[INET6_ADDRSTRLEN + 1];
  size_t length = 0;
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  memset(out, 0, 16);
  if (type == napi_string &&
      napi_get_value_string_utf8(env, value, text, sizeof text, &length) == napi_ok &&
      length < sizeof text - 1 && inet_pton(family, text, out) == 1) {
    return 1;
  }
  char message[128];
  snprintf(message, sizeof message, "socketUid: %s must be an IPv%d address in text form", name,
           family == AF_INET ? 4 : 6);
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message);
  return 0;
}

/* One netlink socket per Node environment (main thread or worker), opened on first use and closed
 * with the environment: opening one per lookup would add two syscalls to every connection. */
struct diag_socket {
  int fd;
  uint32_t sequence;
};

static void close_diag_socket(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct diag_socket *state = data;
  if (state->fd >= 0) close(state->fd);
  free(state);
}

static struct diag_socket *diag_socket(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) == napi_ok && data != NULL) return data;
  struct diag_socket *state = malloc(sizeof *state);
  if (state == NULL) {
    throw_diag_error(env, ENOMEM, "socket");
    return NULL;
  }
  state->fd = -1;
  state->sequence = 0;
  if (napi_set_instance_data(env, state, close_diag_socket, NULL) != napi_ok) {
    free(state);
    napi_throw_error(env, NULL, "socketUid: could not keep the netlink socket");
    return NULL;
  }
  return state;
}

/* Drops the socket after a failure, so the next lookup starts clean rather than reading a late answer. */
static void reset_diag_socket(struct diag_socket *state) {
  if (state->fd >= 0) close(state->fd);
  state->fd = -1;
}

/* Sends the request and reads its answer; returns the uid, -1 when no such socket exists, or -2
 * after throwing. The kernel queues the answer while sendto runs, so the read never has to wait. */
static long long query_uid(napi_env env, struct diag_request *request) {
  struct diag_socket *state = diag_socket(env);
  if (state == NULL) return -2;
  if (state->fd < 0) {
    state->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (state->fd < 0) {
      throw_diag_error(env, errno, "socket");
      return -2;
    }
  }
  request->header.nlmsg_seq = ++state->sequence;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(state->fd, request, sizeof *request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int err = errno;
    reset_diag_socket(state);
    throw_diag_error(env, err, "sendto");
    return -2;
  }
  /* Aligned for the nlmsghdr and inet_diag_msg read in place below. */
  long answer[ANSWER_BYTES / sizeof(long)];
  ssize_t received = recv(state->fd, answer, sizeof answer, MSG_DONTWAIT);
  if (received < 0) {
    int err = errno;
    reset_diag_socket(state);
    throw_diag_error(env, err, "recv");
    return -2;
  }
  size_t left = (size_t)received;
  for (const struct nlmsghdr *message = (const struct nlmsghdr *)answer; NLMSG_OK(message, left);
       message = NLMSG_NEXT(message, left)) {
    if (message->nlmsg_seq != request->header.nlmsg_seq) continue;
    if (message->nlmsg_type == NLMSG_ERROR) {
      if (message->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) break;
      const struct nlmsgerr *error = NLMSG_DATA(message);
      if (error->error == -ENOENT) return -1;
      throw_diag_error(env, error->error < 0 ? -error->error : EPROTO, "SOCK_DIAG_BY_FAMILY");
      return -2;
    }
    if (message->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
        message->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
      const struct inet_diag_msg *found = NLMSG_DATA(message);
      return (long long)found->idiag_uid;
    }
  }
  reset_diag_socket(state);
  throw_diag_error(env, EPROTO, "recv");
  return -2;
}

napi_value socket_uid(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS",
                          "socketUid(family, localAddress, localPort, remoteAddress, remotePort): 5 arguments expected");
    return NULL;
  }
  int32_t family_number = 0;
  napi_valuetype type = napi_undefined;
  napi_typeof(env, argv[0], &type);
  if (type != napi_number || napi_get_value_int32(env, argv[0], &family_number) != napi_ok ||
      (family_number != 4 && family_number != 6)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "socketUid: family must be 4 or 6");
    return NULL;
  }
  int family = family_number == 4 ? AF_INET : AF_INET6;

  struct diag_request request;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  /* No NLM_F_DUMP: an exact lookup of one socket, answered with it or with ENOENT. */
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.body.sdiag_family = (__u8)family;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0U;
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  /* The socket's own view: its local address is `src`, its peer `dst`. */
  if (!read_address(env, argv[1], family, "localAddress", request.body.id.idiag_src) ||
      !read_port(env, argv[2], "localPort", &request.body.id.idiag_sport) ||
      !read_address(env, argv[3], family, "remoteAddress", request.body.id.idiag_dst) ||
      !read_port(env, argv[4], "remotePort", &request.body.id.idiag_dport)) {
    return NULL;
  }

  long long uid = query_uid(env, &request);
  napi_value result;
  if (uid == -2) return NULL;
  if (uid == -1) {
    napi_get_undefined(env, &result);
    return result;
  }
  if (napi_create_uint32(env, (uint32_t)uid, &result) != napi_ok) return NULL;
  return result;
}
