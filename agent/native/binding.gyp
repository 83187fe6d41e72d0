# node-gyp build of mesh-agent's addon (SO_ORIGINAL_DST, socket owner uid by inet_diag); npm runs `node-gyp rebuild` on install because this
# file exists. Plain C against node_api.h only, so no node-addon-api or other dependency.
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["src/addon.c", "src/original_dst.c", "src/socket_uid.c", "src/system_error.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_DEFAULT_SOURCE"]
    }
  ]
}
