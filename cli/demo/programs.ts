// How the demo starts the mesh's own programs and the Bookinfo apps: from dist/ when meshctl itself
// runs compiled (npm start), from the TypeScript sources through tsx when it runs from them (tests).
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export interface Programs {
  /** The checkout: cwd of every child, so `--import tsx` and relative paths resolve. */
  readonly repoRoot: string;
  readonly server: readonly string[];
  readonly agent: readonly string[];
  /** Folder of the Bookinfo app scripts (plain JavaScript, run by node). */
  readonly appsDir: string;
  /** The example config mesh-server serves. */
  readonly examplesDir: string;
  /** meshctl as a user types it from the checkout, for the printed commands. */
  readonly meshctlHint: string;
}

/** The folder holding package.json above `from` (this file lives at cli/demo/ or dist/cli/demo/). */
function findRepoRoot(from: string): string {
  let dir = from;
  for (let depth = 0; depth < 6; depth++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'examples'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the checkout (package.json and examples/) above ${from}`);
}

export function locatePrograms(moduleFile: string = __filename): Programs {
  const repoRoot = findRepoRoot(path.dirname(moduleFile));
  const fromSources = moduleFile.endsWith('.ts');
  const program = (name: string): string[] =>
    fromSources
      ? [process.execPath, '--import', 'tsx', path.join(repoRoot, name, 'main.ts')]
      : [process.execPath, path.join(repoRoot, 'dist', name, 'main.js')];
  return {
    repoRoot,
    server: program('server'),
    agent: program('agent'),
    appsDir: path.join(repoRoot, 'examples', 'bookinfo', 'apps'),
    examplesDir: path.join(repoRoot, 'examples'),
    meshctlHint: `node ${path.relative(process.cwd(), path.join(repoRoot, 'dist', 'cli', 'main.js')) || 'dist/cli/main.js'}`,
  };
}
