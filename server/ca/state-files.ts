// The CA's state dir (generated root key, join-token secret), readable by the server's user only;
// its files are written with lib/atomic-file.
import { promises as fs } from 'node:fs';

export async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode neither applies to a directory that already exists nor escapes the umask.
  await fs.chmod(dir, 0o700);
}
