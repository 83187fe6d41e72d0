/* Node-style system errors for the addon: the symbolic errno name matters more than the text,
 * because callers decide on it (ENOENT: not redirected; EPERM: no rights; ...). */
#define NAPI_VERSION 8
#include "system_error.h"

#include <errno.h>

const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOENT: return "ENOENT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOTCONN: return "ENOTCONN";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EPROTO: return "EPROTO";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "EUNKNOWN";
  }
}

void throw_system_error(napi_env env, int err, const char *syscall, const char *message) {
  const char *name = errno_name(err);
  napi_value code_value, message_value, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value) != napi_ok ||
      napi_create_error(env, code_value, message_value, &error) != napi_ok) {
    napi_throw_error(env, name, message);
    return;
  }
  if (napi_create_int32(env, -err, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok) {
    napi_set_named_property(env, error, "syscall", syscall_value);
  }
  napi_throw(env, error);
}
