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
];
