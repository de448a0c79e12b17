/**
 * The images cvm builds offline from Debian's packages: the images a team
 * deploys (`server`, `supervisor`, carrying this checkout of cvm) and the
 * environment images the tests and the quickstart use. Each is one
 * declarative entry: what mmdebstrap installs, the shell run on the finished
 * root ("$1" is the root), and the image config `docker import` writes. A
 * change to an entry (or, for the deployed images, to cvm's sources) changes
 * its hash, and only then is it rebuilt.
 */

import { prebuiltBinaryDir } from "../src/native/static-binary.js";

/** Debian releases images are made from: trixie where Node.js 20 is needed (bookworm's nodejs is 18). */
export type DebianSuite = "bookworm" | "trixie";

export interface ImageRecipe {
  name: string;
  /** The Debian release; bookworm when absent. */
  suite?: DebianSuite;
  /** Carries this checkout of cvm at `appDir` (compiled dist/, production modules, built dashboard); tagged with its version. */
  app?: boolean;
  /** mmdebstrap's variant: `minbase` installs Essential plus `include`; `extract` unpacks only `include`. */
  variant: "minbase" | "extract";
  include: string[];
  /** mmdebstrap --customize-hook commands, in order; "$1" is the new root. */
  customize: string[];
  /** `docker import --change` instructions. */
  changes: string[];
  /** Images whose docker-save tarballs are baked in at /usr/share/cvm/images, loaded at boot. */
  bakes?: string[];
  /** Keep a docker-save tarball of the imported image, so other images can bake it in. */
  saved?: boolean;
  /** A foreign architecture's packages (extract variant only: nothing of it runs during the build). */
  architecture?: "arm64";
}

/** Where the images that carry cvm have it; `cvm` on PATH runs it. */
export const appDir = "/opt/cvm";

/** Where baked image tarballs sit inside an image, and the unit that loads them. */
export const bakedImagesDir = "/usr/share/cvm/images";

const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const systemdPackages = ["systemd", "systemd-sysv", "dbus", "kmod", "procps", "iproute2", "ca-certificates"];
/** What a developer's shell expects on a VM: git, and ssh itself (with agent forwarding, `git clone git@...` works inside). */
const userPackages = ["sudo", "bash", "less", "openssh-sftp-server", "rsync", "git", "openssh-client", "curl"];
const dockerPackages = ["docker.io", "containerd", "runc", "iptables", "docker-compose"];

/**
 * What a CVM offers beyond Docker, as a VM would: FUSE mounts (bindfs, with
 * fuse's setuid fusermount for users), a TUN relay (socat) and ping for userspace
 * networking, and qemu-user for arm64 binaries and images (binfmt_misc is a
 * CVM's own on Linux 6.7 and newer; systemd-binfmt registers it at boot).
 */
const vmToolPackages = ["bindfs", "socat", "iputils-ping", "qemu-user-static"];

/**
 * qemu-user-static carries every architecture (370 MB); arm64 is the one
 * developers' images come in. The rest goes, with its binfmt.d entries, so
 * systemd-binfmt registers only what is there.
 */
const onlyArm64Qemu = [
  `for f in "$1"/usr/bin/qemu-*-static; do case "$f" in */qemu-aarch64-static) ;; *) rm -f "$f" ;; esac; done`,
  `for f in "$1"/usr/lib/binfmt.d/qemu-*.conf; do case "$f" in */qemu-aarch64.conf) ;; *) rm -f "$f" ;; esac; done`,
  `find "$1/usr/libexec/qemu-binfmt" -xtype l -delete`,
];

/**
 * Units that cannot work in a container nested in a CVM (a kind-style
 * systemd node): their file systems cannot be mounted in a user namespace,
 * and a privileged container holds the capabilities systemd starts them
 * for. kind's node image masks what cannot work in a container likewise. As
 * a CVM these images get the same masks for the boot from the start gate.
 */
const nestedNodeMasks = [
  `chroot "$1" systemctl mask sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount`,
];

/** A default user, uid 1000, with passwordless sudo; `groups` beyond sudo must exist in the image. */
function defaultUser(groups: string[]): string[] {
  return [
    `chroot "$1" useradd --create-home --uid 1000 --shell /bin/bash --groups ${["sudo", ...groups].join(",")} dev`,
    `echo 'dev ALL=(ALL) NOPASSWD:ALL' > "$1/etc/sudoers.d/dev" && chmod 0440 "$1/etc/sudoers.d/dev"`,
  ];
}

/** systemd decides the machine id at first boot; an empty file says so. */
const firstBoot = [`: > "$1/etc/machine-id"`, `rm -f "$1/var/lib/dbus/machine-id"`];

/**
 * A container's boot, trimmed where it costs the user nothing (measured in
 * docs/benchmarks.md: about a quarter of the CPU a CVM's boot took).
 * - /etc/.updated and /var/.updated as new as /usr: the image is built
 *   current, so the units that run on the first boot after an update of /usr
 *   (sysusers, ldconfig, hwdb, the journal catalog) have nothing to do; a
 *   package upgrade inside runs them through its own triggers.
 * - systemd-remount-fs and systemd-tmpfiles-setup-dev masked: a container's
 *   root filesystem and /dev are the engine's, with nothing to remount and no
 *   device nodes it may create.
 * - systemd-logind and dbus-daemon start on demand (D-Bus and socket
 *   activation: the first login or bus client starts them) instead of at
 *   every boot. Their links are the packages' own, so an upgrade of systemd or
 *   dbus inside puts them back.
 * - The generators for block devices (encrypted, integrity and verity
 *   volumes, GPT partitions, hibernation) masked: a CVM has no block devices.
 *   So are those of the kernel command line (debug, run): in a container
 *   systemd reads its own arguments for it, and cvm gives it none. Each
 *   generator is a process of 4 to 6 ms before any unit starts.
 */
const containerBoot = [
  `touch -r "$1/usr" "$1/etc/.updated" "$1/var/.updated"`,
  `ln -sf /dev/null "$1/etc/systemd/system/systemd-remount-fs.service"`,
  `ln -sf /dev/null "$1/etc/systemd/system/systemd-tmpfiles-setup-dev.service"`,
  `mkdir -p "$1/etc/systemd/system-generators" && for g in cryptsetup gpt-auto hibernate-resume integritysetup veritysetup debug run; do ln -sf /dev/null "$1/etc/systemd/system-generators/systemd-$g-generator"; done`,
  `rm -f "$1/lib/systemd/system/multi-user.target.wants/systemd-logind.service" "$1/lib/systemd/system/multi-user.target.wants/dbus.service"`,
];

/** Started before the rest of sysinit (journald's socket is all they need), so Docker answers sooner. */
const earlyDockerUnit = `[Unit]
DefaultDependencies=no
After=systemd-journald.socket local-fs.target
Before=shutdown.target
Conflicts=shutdown.target
`;

/**
 * The Docker daemons' boot: containerd without its Kubernetes CRI plugin
 * (Docker does not use it; Docker's own packages ship it disabled too), and
 * containerd, dockerd and docker.socket ordered early.
 */
const dockerBoot = [
  `sed -i '/^version = 2/a disabled_plugins = ["io.containerd.grpc.v1.cri"]' "$1/etc/containerd/config.toml"`,
  ...["containerd.service", "docker.service", "docker.socket"].map((unit) =>
    writeFile(`/etc/systemd/system/${unit}.d/early.conf`, earlyDockerUnit, "0644"),
  ),
];

/**
 * Docker started on demand, as a Debian VM can be set up: systemd listens on
 * docker.socket from boot, and the first connection to it starts containerd
 * and dockerd. An idle CVM holds only systemd and journald (about 34 MiB less,
 * docs/benchmarks.md), its boot starts two Go daemons fewer, and the first
 * `docker` call pays dockerd's start instead. docker.service and
 * containerd.service lose their multi-user.target links (not masked: an
 * `systemctl enable docker` inside puts Docker back at boot, as on a VM).
 */
const dockerOnDemand = [
  `rm -f "$1/etc/systemd/system/multi-user.target.wants/docker.service" "$1/etc/systemd/system/multi-user.target.wants/containerd.service"`,
  `chroot "$1" systemctl enable docker.socket cvm-docker-resume.service`,
];

/**
 * The baked images are loaded before dockerd first serves its socket, so the
 * call that started Docker already finds them (`docker run cvm/hello` as the
 * first command in a new CVM). A step of docker.service's own start; its
 * failure ("-") leaves Docker working without them rather than not at all.
 */
const preloadDropIn = `[Service]
ExecStartPre=-/usr/libexec/cvm/preload-images
`;

/**
 * A CVM whose inner Docker has containers starts dockerd at boot, without
 * holding the boot for it, so that their restart policies bring them back as
 * a VM's would; a CVM with none keeps Docker on demand.
 */
const dockerResumeUnit = `[Unit]
Description=Start Docker at boot when it holds containers
ConditionDirectoryNotEmpty=/var/lib/docker/containers

[Service]
Type=oneshot
ExecStart=/bin/systemctl --no-block start docker.service

[Install]
WantedBy=multi-user.target
`;

/**
 * Loads each baked tarball unless the image it holds (named in its .ref file)
 * is already there, through a dockerd of its own on a private socket (the
 * real one is not started yet, and once started it serves calls at once),
 * without networking of its own; then stops it. Once per Docker data disk:
 * the marker on that disk skips it afterwards, also when the user removed
 * the images since, as they would stay removed on a VM.
 */
const preloadScript = `#!/bin/sh
set -eu
marker=/var/lib/docker/.cvm-baked-images
[ -e "$marker" ] && exit 0
set -- ${bakedImagesDir}/*.tar
[ -e "$1" ] || exit 0
run=/run/cvm-preload
mkdir -p "$run"
sock="unix://$run/docker.sock"
dockerd --host "$sock" --pidfile "$run/dockerd.pid" --exec-root "$run/exec" \\
  --containerd /run/containerd/containerd.sock --bridge none --iptables=false >"$run/dockerd.log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" || true; }
tries=0
until docker -H "$sock" version >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "the preload's dockerd did not answer:" >&2; cat "$run/dockerd.log" >&2; stop; exit 1
  fi
  sleep 0.05
done
for tar in "$@"; do
  ref=$(cat "\${tar%.tar}.ref")
  if docker -H "$sock" image inspect "$ref" >/dev/null 2>&1; then
    echo "$ref already loaded"
  else
    docker -H "$sock" load --input "$tar" || { stop; exit 1; }
  fi
done
stop
touch "$marker"
`;

function writeFile(path: string, content: string, mode: string): string {
  return `mkdir -p "$1${path.slice(0, path.lastIndexOf("/"))}" && cat > "$1${path}" <<'CVM_EOF'\n${content}CVM_EOF\nchmod ${mode} "$1${path}"`;
}

const busyboxApplets = ["sh", "echo", "cat", "ls", "sleep", "true", "false", "env", "id", "uname", "printf", "mkdir"];

/** Debian's Node.js (trixie's is 20.19) and cvm on PATH, run as its own user. */
const appCustomize = [
  `ln -s ${appDir}/bin/cvm "$1/usr/local/bin/cvm"`,
  `rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/* "$1/usr/share/doc" "$1/usr/share/man"`,
];

/**
 * cvm's C helpers (the start gate, the namespace bridge) compiled statically
 * from the staged sources, named by their source's hash as
 * src/native/static-binary.ts looks for them: a Pod has no compiler.
 */
const prebuiltHelpers = [
  ["supervisor/gate/cvm-gate.c", "cvm-gate"],
  ["netns/cvm-nsbridge.c", "cvm-nsbridge"],
]
  .map(
    ([source, name]) =>
      `src="$1${appDir}/dist/${source}" && gcc -static -O2 -s -o "$1${prebuiltBinaryDir}/${name}-$(sha256sum "$src" | cut -c1-12)" "$src"`,
  )
  .join(" && ");
const prebuiltHelpersHook = `mkdir -p "$1${prebuiltBinaryDir}" && ${prebuiltHelpers}`;

/** A Pod's sandbox process (what registry.k8s.io/pause is): holds the namespaces, reaps orphans, ends on TERM or INT. */
const pauseSource = `#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int signal) { (void)signal; _exit(0); }
static void reap(int signal) { (void)signal; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
`;

const busyboxImage = [
  `for app in ${busyboxApplets.join(" ")}; do ln -sf busybox "$1/bin/$app"; done`,
  `mkdir -p "$1/tmp" && chmod 1777 "$1/tmp"`,
  `rm -rf "$1/usr/share/doc" "$1/usr/share/man"`,
];

export const recipes: ImageRecipe[] = [
  {
    // cvm server (and every other command but the supervisor): Node.js and cvm, no engine. For Kubernetes.
    name: "server",
    suite: "trixie",
    app: true,
    variant: "minbase",
    include: ["nodejs", "ca-certificates"],
    customize: [
      ...appCustomize,
      `chroot "$1" useradd --system --uid 10001 --user-group --home-dir /var/lib/cvm --shell /usr/sbin/nologin cvm`,
      `mkdir -p "$1/var/lib/cvm" && chroot "$1" chown cvm:cvm /var/lib/cvm`,
    ],
    changes: [
      `ENV ${path}`,
      "ENV NODE_ENV=production",
      "USER 10001:10001",
      "WORKDIR /var/lib/cvm",
      `ENTRYPOINT ["cvm"]`,
      `CMD ["server", "--provider=kubernetes", "--listen=0.0.0.0:7080", "--data-dir=/var/lib/cvm"]`,
      "LABEL dev.cvm/component=server",
    ],
  },
  {
    // What a CVM's Pod runs: \`cvm supervisor\` with its own engine (userns-remapped to dockremap).
    name: "supervisor",
    suite: "trixie",
    app: true,
    variant: "minbase",
    include: [
      "nodejs",
      "ca-certificates",
      ...dockerPackages,
      "kmod",
      "procps",
      "iproute2",
      "mount",
      "passwd",
      "uidmap",
      "e2fsprogs",
      "apparmor",
      // CVMs' own /proc (src/supervisor/lxcfs.ts) where the node runs no LXCFS.
      "lxcfs",
      "fuse3",
    ],
    customize: [
      prebuiltHelpersHook,
      ...appCustomize,
      `chroot "$1" useradd --system --no-create-home --shell /usr/sbin/nologin dockremap`,
      `echo "dockremap:100000:65536" > "$1/etc/subuid" && echo "dockremap:100000:65536" > "$1/etc/subgid"`,
    ],
    changes: [
      `ENV ${path}`,
      "ENV NODE_ENV=production",
      `ENTRYPOINT ["cvm", "supervisor"]`,
      "LABEL dev.cvm/component=supervisor",
    ],
  },
  {
    // The sandbox image of the tests' real node (containerd's sandbox_image), built here as nothing can be pulled.
    name: "pause",
    variant: "extract",
    include: [],
    customize: [
      writeFile("/pause.c", pauseSource, "0644"),
      `gcc -static -O2 -s -o "$1/pause" "$1/pause.c" && rm "$1/pause.c"`,
    ],
    changes: [`ENTRYPOINT ["/pause"]`],
  },
  {
    name: "hello",
    variant: "extract",
    include: ["busybox-static"],
    customize: busyboxImage,
    changes: [`ENV ${path}`, `CMD ["/bin/sh"]`],
    saved: true,
  },
  {
    // The same for arm64: a foreign-architecture image, run through qemu-user in a CVM (tests load it there).
    name: "hello-arm64",
    variant: "extract",
    architecture: "arm64",
    include: ["busybox-static"],
    customize: busyboxImage,
    changes: [`ENV ${path}`, `CMD ["/bin/sh"]`],
    saved: true,
  },
  {
    name: "debian-plain",
    variant: "minbase",
    include: ["bash", "coreutils", "procps"],
    customize: [],
    changes: [`ENV ${path}`, `CMD ["/bin/bash"]`],
  },
  {
    name: "debian-dangling-init",
    variant: "minbase",
    include: ["bash", "coreutils", "procps"],
    customize: [`ln -sfn /usr/lib/cvm/no-such-init "$1/sbin/init"`],
    changes: [`ENV ${path}`, `CMD ["/bin/bash"]`],
  },
  {
    name: "debian-systemd",
    variant: "minbase",
    include: [...systemdPackages, ...userPackages],
    customize: [...defaultUser([]), ...nestedNodeMasks, ...containerBoot, ...firstBoot],
    changes: [`ENV ${path}`, "ENV container=docker", `CMD ["/sbin/init"]`, "LABEL dev.cvm.default-user=dev"],
  },
  {
    name: "debian-systemd-docker",
    variant: "minbase",
    include: [...systemdPackages, ...userPackages, ...dockerPackages, ...vmToolPackages],
    customize: [
      ...defaultUser(["docker"]),
      ...onlyArm64Qemu,
      ...nestedNodeMasks,
      writeFile("/usr/libexec/cvm/preload-images", preloadScript, "0755"),
      writeFile("/etc/systemd/system/docker.service.d/cvm-preload.conf", preloadDropIn, "0644"),
      writeFile("/etc/systemd/system/cvm-docker-resume.service", dockerResumeUnit, "0644"),
      ...dockerOnDemand,
      ...containerBoot,
      ...dockerBoot,
      ...firstBoot,
    ],
    changes: [`ENV ${path}`, "ENV container=docker", `CMD ["/sbin/init"]`, "LABEL dev.cvm.default-user=dev"],
    bakes: ["hello"],
  },
];

export function recipeNamed(name: string): ImageRecipe {
  const recipe = recipes.find((r) => r.name === name);
  if (!recipe) throw new Error(`no image recipe named ${name}; known: ${recipes.map((r) => r.name).join(", ")}`);
  return recipe;
}
