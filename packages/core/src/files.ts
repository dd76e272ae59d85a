import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { open, rename, rm } from 'node:fs/promises';

/**
 * Writes a file under a temporary name in the same folder and renames it into place, so a
 * reader never sees a half-written file and an interrupted write leaves the old file intact.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temporaryPath = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(temporaryPath, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporaryPath, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporaryPath, path);
  } catch (error) {
    // The rename fails when `path` is a folder or its parent went away, and the temporary file must not stay behind.
    await rm(temporaryPath, { force: true });
    throw error;
  }
}

/** Returns the hex sha256 of some bytes. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The toolkit's version, recorded in every manifest and report. */
export const TOOLKIT_VERSION: string = (
  createRequire(import.meta.url)('../package.json') as { version: string }
).version;
