// Files the CA keeps in its state dir (generated root key, join-token secret): written atomically,
// readable by the server's user only.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';

/** Writes via a temporary file and rename so a crash never leaves a truncated key or certificate. */
export async function writeAtomic(file: string, content: string | Uint8Array, mode: number): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, file);
}

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
