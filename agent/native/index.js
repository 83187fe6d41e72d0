// Loads mesh-agent's compiled addon (SO_ORIGINAL_DST, socket owner uid) for the transparent proxy.
// A missing binary is reported with the command that builds it, not a bare MODULE_NOT_FOUND.
'use strict';

const path = require('node:path');

const binaryPath = path.join(__dirname, 'build', 'Release', 'original_dst.node');

function load() {
  try {
    return require(binaryPath);
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).includes(binaryPath)) {
      const hint = new Error(
        `@mesh/original-dst: the native addon is not built (${binaryPath} is missing). ` +
          'Build it with `npm rebuild @mesh/original-dst` from the project root ' +
          '(needs make and g++; npm must know where the Node headers are, e.g. npm_config_nodedir=/usr).',
      );
      hint.code = 'MESH_ORIGINAL_DST_NOT_BUILT';
      hint.cause = error;
      throw hint;
    }
    throw error;
  }
}

module.exports = load();
