# node-gyp build of the SO_ORIGINAL_DST addon; npm runs `node-gyp rebuild` on install because this
# file exists. Plain C against node_api.h only, so no node-addon-api or other dependency.
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["src/original_dst.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_DEFAULT_SOURCE"]
    }
  ]
}
