/**
 * Who a shell, a command or an SSH session runs as inside an environment:
 * the image's own user (uid 1000, else the first ordinary account, as `cvm
 * image check` reports it), in its home with its login shell; root where the
 * image has no such user, or when root is asked for. Pure: the passwd text
 * is read by an adapter.
 */

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** The account a process runs as, with what a login gives it. */
export interface LoginAccount extends PasswdEntry {
  /** Why this account: the image's user, root asked for, or root for want of another. */
  source: "image user" | "asked for root" | "no user in the image: root";
}

/** Who was asked for: the image's own user, or root. */
export type AccountRequest = "default" | "root";

const nobodyUid = 65534;
const defaultUid = 1000;

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split("\n")
    .map((line) => line.split(":"))
    .filter((fields) => fields.length >= 7 && /^\d+$/.test(fields[2]) && /^\d+$/.test(fields[3]))
    .map((fields) => ({
      name: fields[0],
      uid: Number(fields[2]),
      gid: Number(fields[3]),
      home: fields[5] || "/",
      shell: fields[6].trim(),
    }));
}

/** The image's ordinary user: uid 1000, else the first account from 1000 up that is not nobody. */
export function ordinaryAccount(entries: PasswdEntry[]): PasswdEntry | undefined {
  return entries.find((e) => e.uid === defaultUid) ?? entries.find((e) => e.uid >= defaultUid && e.uid !== nobodyUid);
}

const rootEntry: PasswdEntry = { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh" };

/** The account for a request, from the environment's /etc/passwd. */
export function loginAccount(entries: PasswdEntry[], request: AccountRequest): LoginAccount {
  const root = entries.find((e) => e.uid === 0) ?? rootEntry;
  if (request === "root") return { ...root, source: "asked for root" };
  const ordinary = ordinaryAccount(entries);
  return ordinary ? { ...ordinary, source: "image user" } : { ...root, source: "no user in the image: root" };
}

/** The login shell to start: the account's, unless it is missing or refuses logins. */
export function loginShellOf(account: PasswdEntry): string {
  return !account.shell || /(nologin|false)$/.test(account.shell) ? "/bin/sh" : account.shell;
}

/**
 * What a login sets: the variables sshd and login(1) give every session, and
 * for an environment with a CPU limit, OMP_NUM_THREADS at that limit (rounded
 * up). `nproc` counts the CPUs a process may run on, which a CPU quota does not
 * change and LXCFS cannot (src/supervisor/lxcfs.ts), but GNU nproc answers
 * OMP_NUM_THREADS when it is set, as OpenMP programs size their threads by it:
 * so `make -j$(nproc)` in a 2-CPU CVM on a 64-core node runs 2 jobs, not 64.
 */
export function loginEnvironment(account: PasswdEntry, cpus?: number): Record<string, string> {
  return {
    HOME: account.home,
    USER: account.name,
    LOGNAME: account.name,
    SHELL: loginShellOf(account),
    ...(cpus && cpus > 0 ? { OMP_NUM_THREADS: String(Math.ceil(cpus)) } : {}),
  };
}
