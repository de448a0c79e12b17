/**
 * The systemd units a CVM masks for the boot, and why. A CVM holds every
 * capability (cvm-container.ts), and systemd starts some units only when it
 * holds a capability: with CAP_SYS_RAWIO it mounts debugfs, tracefs and
 * configfs and checks ext4 snapshots, with CAP_SYS_MODULE it loads kernel
 * modules. Those capabilities
 * count only inside the CVM's user namespace, where the kernel refuses all of
 * that, so the units would fail and the CVM would boot `degraded`, or
 * spend its boot on them, for nothing. kind's node image and sysbox's images mask the same units.
 *
 * One more is masked for speed, not for a capability: the journal's flush to
 * /var/log/journal, a step of every boot that waits for /var to be mounted.
 * A CVM's /var is its root filesystem's, there before journald starts, so the
 * gate leaves the flag the flush would have left and journald writes to
 * /var/log/journal from its start (about 20 ms off the chain every boot
 * waits for, docs/benchmarks.md); the journal stays persistent, as on a VM.
 *
 * The masks are runtime ones (/run/systemd/system/UNIT -> /dev/null, what
 * `systemctl mask --runtime` makes): the start gate writes them into the
 * CVM's fresh /run just before it execs init (gate/cvm-gate.c), so the image
 * is not changed and `systemctl status` says "masked".
 */

export const maskedUnits: { unit: string; why: string }[] = [
  { unit: "sys-kernel-debug.mount", why: "debugfs cannot be mounted in a user namespace" },
  { unit: "sys-kernel-tracing.mount", why: "tracefs cannot be mounted in a user namespace" },
  { unit: "sys-kernel-config.mount", why: "configfs cannot be mounted in a user namespace" },
  { unit: "systemd-modules-load.service", why: "a CVM cannot load kernel modules" },
  { unit: "modprobe@.service", why: "a CVM cannot load kernel modules" },
  { unit: "kmod-static-nodes.service", why: "a CVM cannot make device nodes" },
  { unit: "e2scrub_reap.service", why: "a CVM has no block devices to check" },
  {
    unit: "systemd-journal-flush.service",
    why: "its /var is there before journald, which writes to /var/log/journal from its start",
  },
];
