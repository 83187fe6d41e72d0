// Writing a file so that a crash never leaves it truncated: a temporary file beside it, synced,
// then renamed over it. Used for keys, certificates and secrets, whose mode is set at creation.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';

export async function writeFileAtomic(file: string, content: string | Uint8Array, mode: number): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await fs.open(temp, 'wx', mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, file);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}
