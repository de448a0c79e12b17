/**
 * The SSH host key of this cvm server: made once (ed25519) in the data dir,
 * readable by root only, and the same for every environment, since every
 * SSH connection ends at the server. `cvm config-ssh` pins its public half in
 * the user's known hosts, so `ssh NAME.cvm` never asks and notices another
 * server answering. Replicas that share a store should share this file too.
 */

import { chmod, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import ssh2 from "ssh2";

const { utils } = ssh2;

export interface HostKey {
  /** OpenSSH private key text, as ssh2's server takes it. */
  privateKey: string;
  /** `ssh-ed25519 AAAA...`, as known_hosts holds it. */
  publicKey: string;
}

export const hostKeyFile = "ssh_host_ed25519_key";

function publicOf(privateKey: string): string {
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return `${key.type} ${key.getPublicSSH().toString("base64")}`;
}

/**
 * ssh2 writes an ed25519 key whose public half begins with a zero byte one
 * byte short (about 1 key in 256), and then cannot read it back: such a key
 * is made again rather than stored.
 */
export function newPrivateKey(): string {
  for (;;) {
    const { private: privateKey } = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(privateKey) instanceof Error)) return privateKey;
  }
}

/** The host key from the data dir, made there (0600) on first use; never replaced once made. */
export async function loadHostKey(dataDir: string): Promise<HostKey> {
  const path = join(dataDir, hostKeyFile);
  try {
    const privateKey = await readFile(path, "utf8");
    return { privateKey, publicKey: publicOf(privateKey) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const privateKey = newPrivateKey();
  try {
    // Exclusive: of two servers starting on one data dir, the first key stays.
    const file = await open(path, "wx", 0o600);
    await file.writeFile(privateKey);
    await file.close();
    await chmod(path, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return loadHostKey(dataDir);
  }
  return { privateKey, publicKey: publicOf(privateKey) };
}
