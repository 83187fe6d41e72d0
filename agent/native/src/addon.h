/* The addon's exported functions, each defined in the file named for it and registered in addon.c. */
#ifndef MESH_ADDON_H
#define MESH_ADDON_H

#include <node_api.h>

/* original_dst.c: originalDestination(fd) -> { address, port, family } */
napi_value original_destination(napi_env env, napi_callback_info info);

/* socket_uid.c: socketUid(family, localAddress, localPort, remoteAddress, remotePort) -> uid | undefined */
napi_value socket_uid(napi_env env, napi_callback_info info);

#endif
