/*
 * cvm-gate: PID 1 of a CVM until the supervisor releases it.
 *
 *   cvm-gate hold [--mask=UNIT,...] [--cpus=N] PATH [ARGS...]
 *                                 wait to be released. SIGUSR1: exec PATH so
 *                                 the real init keeps PID 1 (the supervisor
 *                                 hands the container's cgroup directories to
 *                                 its remapped root in between; systemd
 *                                 started before that fails with "Failed to
 *                                 create /init.scope control group").
 *                                 SIGUSR2: become the reaper (the image has
 *                                 no usable /sbin/init). --mask: systemd
 *                                 units masked for this boot, before the exec
 *                                 (systemd-masks.ts says which and why).
 *                                 --cpus: the CVM's CPUs, which every unit
 *                                 systemd starts gets as OMP_NUM_THREADS.
 *   cvm-gate reap                 the reaper: the minimal init that reaps
 *                                 orphans and exits on SIGTERM or SIGRTMIN+3
 *                                 (the stop signal of a CVM). It names itself
 *                                 "cvm-reaper" so the supervisor can tell.
 *
 * A signal from outside a PID namespace reaches its init only when init has a
 * handler, so a release sent before the handler exists is lost: the supervisor
 * repeats it until /proc/PID/comm no longer reads "cvm-gate".
 *
 * While it holds, the gate also gives the CVM a sysfs that nested privileged
 * containers can mount again (see swap_sysfs). Built with gcc -static at first
 * use; no libc beyond what -static links.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A gate nobody releases (the supervisor died mid-build) gives up. */
#define HOLD_SECONDS 600

static void ignore(int sig) { (void)sig; }

static void handle(int sig) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = ignore;
  sigaction(sig, &action, NULL);
}

static int reap(void);

/*
 * Since Linux 6.7 binfmt_misc is one instance per user namespace: mounted
 * here, it is the CVM's own, so foreign-architecture handlers (qemu-user)
 * registered in it reach only the CVM and what runs in it, and the node's
 * stay as they are. systemd mounts it only through an automount, which a user
 * namespace cannot make, so without this systemd-binfmt never runs. Older
 * kernels refuse the mount (EPERM); the supervisor reports which it was.
 */
#define BINFMT_MISC "/proc/sys/fs/binfmt_misc"

static void mount_binfmt_misc(void) {
  if (getpid() != 1) return;
  mount("binfmt_misc", BINFMT_MISC, "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/*
 * The engine mounts a container's sysfs read-only, and sysfs is one super
 * block per network namespace: created read-only, it stays read-only (it
 * belongs to the node's user namespace, so no remount from inside can change
 * it). The kernel lets a user namespace mount a fresh sysfs only as
 * permissive as one it can already see whole (fs/namespace.c,
 * mnt_already_visible), so under a read-only super block every nested
 * `docker run --privileged` fails: 'error mounting "sysfs" ... operation not
 * permitted'. The supervisor binds a writable sysfs of an empty network
 * namespace at SYSFS_REFERENCE (sysfs-reference.ts) as one such view; here
 * the CVM's /sys is replaced by a fresh sysfs of its own network namespace
 * with a writable super block, mounted read-only (systemd reads a read-only
 * /sys as "no udev here"). Writes through a writable sysfs still need the
 * node's root for everything but the CVM's own network devices: its files
 * belong to the node's uid 0, unmapped in the CVM.
 *
 * The reference stays: tools that unmount /sys to mount their own network
 * namespace's (`ip netns exec`) need a view left once /sys is gone. It shows
 * only what the CVM's /sys shows, less its network devices.
 *
 * It runs at release: the CVM's first view of its /sys is the one init gets.
 */
#define SYSFS_REFERENCE "/.cvm/sysfs"
#define CGROUP_PARKED "/run/.cvm-cgroup"
/*
 * LXCFS's file (lxcfs.ts) bound over the engine's sysfs: a detached /sys
 * takes it along, so it is parked beside the cgroups and put back over the
 * new sysfs, or the CVM would see the node's CPUs there.
 */
#define CPU_ONLINE "/sys/devices/system/cpu/online"
#define CPU_ONLINE_PARKED "/run/.cvm-cpu-online"
#define SYSFS_MAGIC 0x62656572

static int is_sysfs(const char *path) {
  struct statfs fs;
  return statfs(path, &fs) == 0 && fs.f_type == SYSFS_MAGIC;
}

static void note(const char *step) { fprintf(stderr, "cvm-gate: sysfs: %s: %s\n", step, strerror(errno)); }

/* On any failure the CVM keeps a read-only /sys, as it had; only nesting is lost, and the supervisor says so. */
static void swap_sysfs(void) {
  const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (getpid() != 1 || !is_sysfs(SYSFS_REFERENCE)) return;
  mkdir(CGROUP_PARKED, 0700);
  // Only where LXCFS's file is bound there: a plain sysfs file is no mount point, and the move fails.
  int online = open(CPU_ONLINE_PARKED, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (online >= 0) close(online);
  int online_parked = mount(CPU_ONLINE, CPU_ONLINE_PARKED, NULL, MS_MOVE, NULL) == 0;
  if (mount("/sys/fs/cgroup", CGROUP_PARKED, NULL, MS_MOVE, NULL) != 0) {
    note("park /sys/fs/cgroup");
  } else if (umount2("/sys", MNT_DETACH) != 0) {
    note("unmount the engine's /sys");
    if (mount(CGROUP_PARKED, "/sys/fs/cgroup", NULL, MS_MOVE, NULL) != 0) note("put /sys/fs/cgroup back");
  } else {
    if (mount("sysfs", "/sys", "sysfs", flags, NULL) != 0) {
      note("mount a writable sysfs");
      if (mount("sysfs", "/sys", "sysfs", flags | MS_RDONLY, NULL) != 0) note("mount a read-only sysfs");
    }
    if (mount(CGROUP_PARKED, "/sys/fs/cgroup", NULL, MS_MOVE, NULL) != 0) note("put /sys/fs/cgroup back");
    if (mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, NULL) != 0) note("make /sys read-only");
  }
  if (online_parked && mount(CPU_ONLINE_PARKED, CPU_ONLINE, NULL, MS_MOVE, NULL) != 0) note("put LXCFS's cpu/online back");
  unlink(CPU_ONLINE_PARKED);
  rmdir(CGROUP_PARKED);
}

/*
 * A boot id of the CVM's own for each start. The kernel's
 * /proc/sys/kernel/random/boot_id is the node's, the same for every CVM and
 * every start of one: journald stamps each entry with it, so a stopped and
 * started CVM had one boot (`journalctl -b -1` found nothing). A fresh random
 * id (a version 4 UUID, as the kernel makes) is bound over it, read-only,
 * from the CVM's own /run.
 *
 * Only where LXCFS already covers files of /proc: a /proc with nothing on
 * top is what lets a user namespace inside mount a proc of its own (rootless
 * tools), which one more cover would take away.
 */
#define BOOT_ID "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_OWN "/run/.cvm-boot-id"
static void own_boot_id(void) {
  unsigned char b[16];
  char text[40];
  struct stat proc, uptime;
  if (getpid() != 1 || stat("/proc", &proc) != 0 || stat("/proc/uptime", &uptime) != 0) return;
  if (proc.st_dev == uptime.st_dev) return; /* no LXCFS: /proc stays whole */
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return;
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  int fd = open(BOOT_ID_OWN, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    fprintf(stderr, "cvm-gate: boot id: write %s: %s\n", BOOT_ID_OWN, strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  close(fd);
  if (mount(BOOT_ID_OWN, BOOT_ID, NULL, MS_BIND, NULL) != 0 ||
      mount(NULL, BOOT_ID, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
    fprintf(stderr, "cvm-gate: boot id: bind over %s: %s\n", BOOT_ID, strerror(errno));
  }
}

/*
 * The flag the journal's flush leaves (`journalctl --flush`): journald, when
 * it starts and finds it, writes to /var/log/journal at once instead of
 * /run until the flush. A CVM's /var is there before journald starts, so the
 * flush is masked (systemd-masks.ts) and its flag left here instead.
 */
static void mark_journal_flushed(void) {
  mkdir("/run/systemd/journal", 0755);
  int fd = open("/run/systemd/journal/flushed", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "cvm-gate: mark the journal flushed: %s\n", strerror(errno));
    return;
  }
  close(fd);
}

/*
 * Runtime masks, as `systemctl mask --runtime` makes them. Written here, as
 * the CVM's root, because the node's root cannot create files in the CVM's
 * /run: that tmpfs belongs to the CVM's user namespace (EOVERFLOW).
 */
static void mask_units(const char *units) {
  char list[4096];
  char path[512];
  if (getpid() != 1 || units == NULL || snprintf(list, sizeof list, "%s", units) >= (int)sizeof list) return;
  mkdir("/run/systemd", 0755);
  mkdir("/run/systemd/system", 0755);
  for (char *unit = strtok(list, ","); unit != NULL; unit = strtok(NULL, ",")) {
    if (strchr(unit, '/') != NULL || snprintf(path, sizeof path, "/run/systemd/system/%s", unit) >= (int)sizeof path)
      continue;
    if (symlink("/dev/null", path) != 0 && errno != EEXIST) {
      fprintf(stderr, "cvm-gate: mask %s: %s\n", unit, strerror(errno));
    }
    if (strcmp(unit, "systemd-journal-flush.service") == 0) mark_journal_flushed();
  }
}

/*
 * Every unit systemd starts gets OMP_NUM_THREADS at the CVM's CPUs, as the
 * sessions cvm opens do (login-account.ts): `nproc` counts the CPUs a process
 * may run on, which a CPU quota does not change, and answers that variable
 * instead; OpenMP programs size their threads by it. A manager drop-in in
 * /run, written as the CVM's root for the reason mask_units says.
 */
static void default_threads(const char *cpus) {
  char text[64];
  size_t digits = cpus == NULL ? 0 : strspn(cpus, "0123456789");
  if (getpid() != 1 || digits == 0 || digits > 4 || cpus[digits] != '\0') return;
  mkdir("/run/systemd", 0755);
  mkdir("/run/systemd/system.conf.d", 0755);
  int length = snprintf(text, sizeof text, "[Manager]\nDefaultEnvironment=OMP_NUM_THREADS=%s\n", cpus);
  int fd = open("/run/systemd/system.conf.d/cvm-cpus.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, (size_t)length) != length) {
    fprintf(stderr, "cvm-gate: OMP_NUM_THREADS for systemd's units: %s\n", strerror(errno));
  }
  if (fd >= 0) close(fd);
}

static int hold(const char *masks, const char *cpus, char **argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGRTMIN + 3);
  sigprocmask(SIG_BLOCK, &set, NULL);
  /*
   * Named only now, with the release signals blocked (so queued, never lost
   * nor fatal): the name is what the supervisor takes for "held, ready to
   * be released" (start-gate.ts). A process that is not a namespace's init
   * (the gate's tests) would be killed by a release signal sent earlier.
   */
  prctl(PR_SET_NAME, "cvm-gate", 0, 0, 0);
  handle(SIGUSR1);
  handle(SIGUSR2);
  handle(SIGTERM);
  handle(SIGINT);
  handle(SIGRTMIN + 3);
  struct timespec timeout = {HOLD_SECONDS, 0};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &timeout);
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      /*
       * "Released, opening": the supervisor stops repeating the release.
       * One that came after the exec would find the program's own default
       * disposition (fatal but to a namespace's init: the gate's tests).
       */
      prctl(PR_SET_NAME, "cvm-gate-open", 0, 0, 0);
      swap_sysfs();
      mount_binfmt_misc();
      own_boot_id();
    }
    if (sig == SIGUSR1) {
      mask_units(masks);
      default_threads(cpus);
      break;
    }
    if (sig == SIGUSR2) {
      sigprocmask(SIG_UNBLOCK, &set, NULL);
      return reap();
    }
    if (sig < 0 && errno == EINTR) continue;
    if (sig < 0) {
      fprintf(stderr, "cvm-gate: not released within %d s\n", HOLD_SECONDS);
      return 1;
    }
    return 0; /* stopped before release */
  }
  /* The real init starts with default dispositions and nothing blocked. */
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  signal(SIGUSR1, SIG_DFL);
  signal(SIGUSR2, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGRTMIN + 3, SIG_DFL);
  execv(argv[0], argv);
  fprintf(stderr, "cvm-gate: exec %s: %s\n", argv[0], strerror(errno));
  return 127;
}

static int reap(void) {
  prctl(PR_SET_NAME, "cvm-reaper", 0, 0, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGRTMIN + 3);
  sigprocmask(SIG_BLOCK, &set, NULL);
  handle(SIGCHLD);
  handle(SIGTERM);
  handle(SIGINT);
  handle(SIGRTMIN + 3);
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
      continue;
    }
    if (sig < 0) continue;
    return 0;
  }
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "hold") == 0) {
    const char *masks = NULL;
    const char *cpus = NULL;
    int at = 2;
    for (; at < argc && strncmp(argv[at], "--", 2) == 0; at++) {
      if (strncmp(argv[at], "--mask=", 7) == 0) {
        masks = argv[at] + 7;
      } else if (strncmp(argv[at], "--cpus=", 7) == 0) {
        cpus = argv[at] + 7;
      } else {
        break;
      }
    }
    if (at < argc && strncmp(argv[at], "--", 2) != 0) return hold(masks, cpus, argv + at);
  }
  if (argc == 2 && strcmp(argv[1], "reap") == 0) return reap();
  fprintf(stderr, "usage: cvm-gate hold [--mask=UNIT,...] [--cpus=N] PATH [ARGS...] | cvm-gate reap\n");
  return 2;
}
