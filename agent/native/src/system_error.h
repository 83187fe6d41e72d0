/* Errors shaped like Node's own system errors (code, errno, syscall) for the addon's functions,
 * so callers branch on error.code the same way as for an error from the net module. */
#ifndef MESH_SYSTEM_ERROR_H
#define MESH_SYSTEM_ERROR_H

#include <node_api.h>

/* Symbolic errno name (ENOENT, EBADF, ...); "EUNKNOWN" for codes these syscalls do not report. */
const char *errno_name(int err);

/* Throws Error(message) with code = errno_name(err), errno = -err and syscall set. */
void throw_system_error(napi_env env, int err, const char *syscall, const char *message);

#endif
