/* Module entry of mesh-agent's native addon: registers what the agent needs from the kernel that
 * Node has no API for (original destination of a redirected connection, owner uid of a socket). */
#define NAPI_VERSION 8
#include <node_api.h>

#include "addon.h"

static int export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "originalDestination", original_destination) ||
      !export_function(env, exports, "socketUid", socket_uid)) {
    return NULL;
  }
  return exports;
}
