/**
 * The whole Kubernetes path on a real node, as a team would run it: the
 * images `npm run images -- server supervisor` builds, pushed to the
 * cluster's registry; `helm install` of the chart, which starts cvm server as
 * a Pod (in-cluster config, SQLite); through that server's API an admin turns
 * CVMs on (the checks pass), creates a CVM from the systemd + Docker image,
 * and `cvm ssh` reaches the CVM through the Kubernetes exec API. Asserted as a
 * user sees it, and on the node as an operator would look: root inside is an
 * unprivileged uid on the node, the supervisor is out of reach, home and the
 * inner Docker's images survive stop and start, and delete leaves nothing.
 *
 * The node is test/harness/kube-node.ts's (containerd, kubelet, kube-proxy
 * on this machine, with its runc wrapper: a named test adaptation).
 */

import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { buildImages, checkoutTag } from "../../images/build.js";
import type { CheckResult } from "../../src/api/contract.js";
import { CvmClient } from "../../src/client/index.js";
import type { Environment, EnvironmentState } from "../../src/core/environment.js";
import { defaultSettings, type InfrastructureSettings } from "../../src/core/settings.js";
import { runClusterChecks, type TrialOptions } from "../../src/infra/cluster-checks.js";
import { objectNames } from "../../src/providers/kubernetes/index.js";
import {
  binaryPath,
  createTestNamespace,
  ensureKubeBinaries,
  type Kube,
  realKubeUnavailable,
  startKube,
} from "../harness/kube.js";
import { freePort } from "../harness/ports.js";
import { startTestServer } from "../harness/server.js";
import {
  agentProbe,
  assertOwnProc,
  echoServer,
  firstAnswerThrough,
  ok,
  ownProcScript,
  run as runToEnd,
  withSshTunnel,
} from "../workspace/harness.js";

const run = promisify(execFile);
const cvmBin = join(import.meta.dirname, "..", "..", "bin", "cvm");
const chart = join(import.meta.dirname, "..", "..", "deploy", "helm", "cvm");
const namespace = "cvm";
const password = "correct horse battery";

const skip =
  realKubeUnavailable() ??
  (process.env.CVM_TEST_REAL_NODE === "1"
    ? undefined
    : "the whole path on a real node (images, helm install, a CVM booted, stopped, started and deleted) takes 5 to 13 minutes here, with the machine's load: CI runs it (npm test sets CVM_TEST_REAL_NODE=1 when CI is set); set CVM_TEST_REAL_NODE=1 to run it");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** A small HTTP server inside (Perl is in every Debian image): every path answers where it was asked. */
const httpServer = (port: number) =>
  `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>${port},Listen=>5,ReuseAddr=>1) or die "$!"; while($c=$s->accept){($p)=<$c>=~m{^\\S+ (\\S+)}; 1 while <$c> !~ /^\\r?$/; $b="hello from inside at $p\\n"; print $c "HTTP/1.1 200 OK\\r\\nContent-Length: ".length($b)."\\r\\nConnection: close\\r\\n\\r\\n$b"; close $c}' >/dev/null 2>&1 </dev/null &`;

describe("cvm on a real Kubernetes node, installed with the chart", { skip, timeout: 40 * 60_000 }, () => {
  let kube: Kube;
  let core: CoreV1Api;
  let admin: CvmClient;
  let url: string;
  let cvmImage: string;
  let environment: Environment;

  /** The real CLI, as a script uses it: CVM_URL and CVM_TOKEN, stdin given or closed. */
  function cvm(args: string[], input?: string): Promise<Result> {
    return new Promise((resolve) => {
      const child = spawn(cvmBin, args, {
        env: { ...process.env, CVM_URL: url, CVM_TOKEN: admin.token ?? "" },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
      });
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      child.stdin.end(input);
      const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, stdout, stderr });
      });
    });
  }

  async function inside(command: string): Promise<string> {
    const result = await cvm(["ssh", "--user", "root", "dev", "--", "sh", "-c", command]);
    assert.equal(result.code, 0, `\`${command}\` in the CVM exited ${result.code}: ${result.stderr}${result.stdout}`);
    return result.stdout;
  }

  async function until(states: EnvironmentState[], timeoutMs = 10 * 60_000): Promise<Environment> {
    const deadline = Date.now() + timeoutMs;
    let last: Environment | undefined;
    while (Date.now() < deadline) {
      last = await admin.environment(environment.id);
      if (states.includes(last.state)) return last;
      await sleep(500);
    }
    throw new Error(
      `the environment stayed ${last?.state} (${last?.stateReason ?? ""}); wanted ${states.join(" or ")}`,
    );
  }

  async function buildLog(): Promise<string[]> {
    const lines: string[] = [];
    for await (const line of admin.logs(environment.id)) if (!("end" in line)) lines.push(line.text);
    return lines;
  }

  before(async () => {
    const log = (line: string) => console.log(`  ${line}`);
    const [images] = await Promise.all([
      buildImages({ names: ["server", "supervisor", "debian-systemd-docker"], log: (l) => log(`images: ${l}`) }),
      ensureKubeBinaries(["helm"]),
    ]);
    kube = await startKube({ realNode: true, log });
    const node = kube.node;
    assert.ok(node);
    core = kube.config().makeApiClient(CoreV1Api);
    const reference = images.find((i) => i.name === "debian-systemd-docker")?.reference ?? "";
    // The node's registry, as its Pods reach it: what a cluster's in-house registry is.
    cvmImage = reference.replace(/^[^/]+/, node.registry);
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    const started = Date.now();
    await run(
      binaryPath("helm"),
      [
        "install",
        "cvm",
        chart,
        "--namespace",
        namespace,
        "--kubeconfig",
        kube.kubeconfig,
        "--set",
        `image.registry=${node.registry}`,
        "--set",
        `image.tag=${checkoutTag()}`,
        "--set",
        `environments.insecureRegistries={${node.registry}}`,
        "--wait",
        "--timeout",
        "10m",
      ],
      { maxBuffer: 8 * 1024 * 1024 },
    );
    log(`helm install: the server's Pod ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const service = await core.readNamespacedService({ name: "cvm", namespace });
    url = `http://${service.spec?.clusterIP}:${service.spec?.ports?.[0].port}`;
    admin = new CvmClient({ baseUrl: url });
    // The setup code, where the chart's notes say to find it: the server's log.
    const [serverPod] = (
      await core.listNamespacedPod({
        namespace,
        labelSelector: "app.kubernetes.io/instance=cvm,app.kubernetes.io/name=cvm",
      })
    ).items;
    const serverLog = await core.readNamespacedPodLog({ name: serverPod?.metadata?.name ?? "", namespace });
    const setupCode = /first-run setup code: (\S+)/.exec(serverLog)?.[1];
    assert.ok(setupCode, `the server's log names the first-run setup code:\n${serverLog.slice(0, 2000)}`);
    admin.token = (await admin.createFirstAdmin({ setupCode, email: "admin@example.com", password })).token;
  });

  after(async () => {
    await kube?.stop();
  });

  test("the server runs in the cluster with its in-cluster configuration and SQLite", async () => {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: "app.kubernetes.io/name=cvm" });
    assert.equal(pods.items.length, 1);
    const pod = pods.items[0];
    assert.equal(pod.spec?.nodeName, kube.node?.name);
    assert.match(pod.spec?.containers[0].image ?? "", new RegExp(`/cvm/server:${checkoutTag()}$`));
    const logs = await core.readNamespacedPodLog({ name: pod.metadata?.name ?? "", namespace });
    assert.match(logs, /"store":"sqlite","provider":"kubernetes","msg":"cvm server listening"/);
  });

  // ------------------------------------------------------------------ k8s-trial: the doctor's trial Pod
  // Issue 10, bad input: before CVMs are enabled, the checks name what only a node can tell (an image it
  // cannot pull, a runtime it lacks, an image out of reach from inside the cluster), and a namespace
  // whose Pod Security refuses the Pod fails a CVM with the reason in its build log, leaving no Pod.
  describe("the doctor's trial Pod, before CVMs are enabled", () => {
    const trialPods = async (ns = namespace) =>
      (await core.listNamespacedPod({ namespace: ns, labelSelector: "dev.cvm/trial=true" })).items.map(
        (pod) => pod.metadata?.name,
      );
    const trialOf = async (
      settings: InfrastructureSettings = defaultSettings,
      trial: TrialOptions = {},
      ns = namespace,
    ): Promise<CheckResult> => {
      const node = kube.node;
      assert.ok(node);
      const results = await runClusterChecks({
        settings,
        kubeconfig: kube.kubeconfig,
        namespace: ns,
        trial: {
          // What the chart gives the server (CVM_SUPERVISOR_IMAGE, CVM_INSECURE_REGISTRIES).
          podOptions: {
            supervisorImage: `${node.registry}/cvm/supervisor:${checkoutTag()}`,
            insecureRegistries: [node.registry],
          },
          ...trial,
        },
      });
      assert.deepEqual(await trialPods(ns), [], "the trial Pod is always deleted");
      const result = results.find((r) => r.id === "supervisor-trial");
      assert.ok(result, "the trial check ran");
      console.log(`  supervisor-trial: ${result.status}: ${result.evidence}`);
      return result;
    };

    test("through the server's API: every check passes, the trial ran on the node and reached the CVM image", async () => {
      const checks = await admin.infrastructureChecks([cvmImage]);
      assert.deepEqual(
        checks.checks.filter((c) => c.status === "fail"),
        [],
        "no check fails",
      );
      const trial = checks.checks.find((c) => c.id === "supervisor-trial");
      assert.equal(trial?.status, "pass", trial?.evidence);
      assert.match(
        trial?.evidence ?? "",
        new RegExp(`ran on node ${kube.node?.name} in [\\d.]+ s: supervisor image \\S+/cvm/supervisor:\\S+ pulled`),
      );
      assert.ok(trial?.evidence.includes(`${cvmImage} (sha256:`), trial?.evidence);
      assert.deepEqual(await trialPods(), [], "the trial Pod is gone");
      assert.equal((await admin.infrastructure()).cvmEnabled, false, "still off: the checks only looked");
    });

    test("a supervisor image the node cannot pull is named, with the kubelet's words", async () => {
      const node = kube.node;
      assert.ok(node);
      const missing = `${node.registry}/cvm/no-such-supervisor:1`;
      const trial = await trialOf(defaultSettings, { podOptions: { supervisorImage: missing } });
      assert.equal(trial.status, "fail");
      assert.match(trial.evidence, new RegExp(`cannot pull the supervisor image ${missing}: `));
      assert.match(trial.evidence, /not found|manifest unknown/i);
      assert.match(trial.remedy ?? "", /Push the supervisor image/);
    });

    test("sysbox asked on a node without it: the trial names the missing runtime and the node", async () => {
      const trial = await trialOf({ ...defaultSettings, runtime: "sysbox" });
      assert.equal(trial.status, "fail");
      assert.match(
        trial.evidence,
        new RegExp(`the isolation runtime is missing on node ${kube.node?.name}: .*no sysbox-runc`),
      );
    });

    test("a warm pool's image and an --image the cluster cannot reach are named, with the registry's answer", async () => {
      const node = kube.node;
      assert.ok(node);
      const poolImage = `${node.registry}/cvm/no-such-pool-image:1`;
      const trial = await trialOf(
        { ...defaultSettings, pools: [{ image: poolImage, cpu: 1, memoryGiB: 1, diskGiB: 1, count: 1 }] },
        { images: [cvmImage, "nowhere.invalid/cvm/dev:1"] },
      );
      assert.equal(trial.status, "fail");
      assert.match(trial.evidence, new RegExp(`image ${poolImage} unreachable from inside the cluster: not-found: `));
      assert.match(
        trial.evidence,
        /image nowhere\.invalid\/cvm\/dev:1 unreachable from inside the cluster: unreachable: /,
      );
      assert.ok(trial.evidence.includes(`reached: ${cvmImage} (sha256:`), "the good image is still reached");
    });

    test("Pod Security enforce=baseline: the dry run names it, no trial is made, and a CVM there fails saying why, leaving no Pod", async () => {
      const baseline = "cvm-baseline";
      await createTestNamespace(kube, baseline, { "pod-security.kubernetes.io/enforce": "baseline" });
      const results = await runClusterChecks({
        settings: defaultSettings,
        kubeconfig: kube.kubeconfig,
        namespace: baseline,
      });
      const admission = results.find((r) => r.id === "supervisor-admission");
      assert.equal(admission?.status, "fail");
      assert.match(admission?.evidence ?? "", /violates PodSecurity "baseline:latest"/);
      const trial = results.find((r) => r.id === "supervisor-trial");
      assert.equal(trial?.status, "not-applicable", trial?.evidence);
      assert.match(trial?.evidence ?? "", /^no trial Pod: the namespace refuses the supervisor Pod/);
      assert.deepEqual(await trialPods(baseline), []);

      // A server for that namespace (on this machine, as a team's second installation would be): forced on, a CVM fails.
      const server = await startTestServer({
        provider: "kubernetes",
        kubeconfig: kube.kubeconfig,
        namespace: baseline,
      });
      try {
        const owner = await server.firstAdmin();
        await owner.updateInfrastructure({ cvmEnabled: true, force: true });
        const created = await owner.createEnvironment({
          name: "refused",
          image: cvmImage,
          cvm: true,
          cpu: 0.5,
          memoryGiB: 1,
        });
        let failed: Environment | undefined;
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          failed = await owner.environment(created.id);
          if (failed.state === "failed" || failed.state === "running") break;
          await sleep(500);
        }
        assert.equal(failed?.state, "failed");
        assert.match(failed?.stateReason ?? "", /violates PodSecurity "baseline:latest"/);
        const log: string[] = [];
        for await (const line of owner.logs(created.id)) if (!("end" in line)) log.push(line.text);
        assert.ok(
          log.some((line) => /violates PodSecurity "baseline:latest"/.test(line)),
          `the build log says why:\n${log.join("\n")}`,
        );
        const left = await core.listNamespacedPod({ namespace: baseline });
        assert.deepEqual(
          left.items.map((pod) => pod.metadata?.name),
          [],
          "no Pod is left in the namespace",
        );
        await owner.deleteEnvironment(created.id);
      } finally {
        await server.close();
      }
    });
  });
  // ------------------------------------------------------------------ end of k8s-trial

  test("the infrastructure checks pass on this cluster, and an admin turns CVMs on without forcing", async () => {
    const checks = await admin.infrastructureChecks();
    const failing = checks.checks.filter((c) => c.status === "fail");
    assert.deepEqual(failing, [], "no check fails");
    await admin.updateInfrastructure({ cvmEnabled: true });
    assert.equal((await admin.infrastructure()).cvmEnabled, true);
  });

  test("a CVM reaches running with systemd as PID 1, and the supervisor's reports are in its build log", async () => {
    environment = await admin.createEnvironment({ name: "dev", image: cvmImage, cvm: true, cpu: 1, memoryGiB: 2 });
    const running = await until(["running", "failed"]);
    assert.equal(running.state, "running", running.stateReason);
    assert.equal(running.systemd, "running");
    assert.equal(running.docker, "answering");
    const log = await buildLog();
    for (const expected of [/^engine: cvm's own dockerd/, /^cgroups: \d+ directories handed/, /^systemd: running/]) {
      assert.ok(
        log.some((line) => expected.test(line)),
        `the build log has ${expected}:\n${log.join("\n")}`,
      );
    }
    assert.equal((await inside("cat /proc/1/comm")).trim(), "systemd");
    assert.equal((await inside("systemctl is-system-running")).trim(), "running");
  });

  test("cvm ssh: a nested docker run, stdin, exit codes and a terminal, all inside the CVM", async () => {
    // The first Docker call of all: it starts dockerd, which has loaded the baked cvm/hello before it answers.
    const nested = await cvm(["ssh", "dev", "--", "docker", "run", "--rm", "--pull=never", "cvm/hello", "echo", "ok"]);
    assert.equal(nested.code, 0, nested.stderr);
    assert.equal(nested.stdout.trim(), "ok");
    const piped = await cvm(["ssh", "dev", "--", "cat"], "through stdin\n");
    assert.equal(piped.stdout, "through stdin\n");
    const failing = await cvm(["ssh", "dev", "--", "sh", "-c", "echo to-stderr >&2; exit 3"]);
    assert.equal(failing.code, 3);
    assert.match(failing.stderr, /to-stderr/);
    const terminal = await cvm(["ssh", "-t", "dev", "--", "tty"]);
    assert.equal(terminal.code, 0, terminal.stderr);
    assert.match(terminal.stdout, /^\/dev\/pts\/\d+/);
    // The shell is the CVM's: its hostname, its systemd; not the supervisor's container.
    assert.equal((await inside("hostname")).trim(), "dev");
  });

  test("root inside is an unprivileged uid on the node, and the supervisor is out of reach", async () => {
    assert.match(await inside("cat /proc/self/uid_map"), /^\s*0\s+100000\s+65536\s*$/);
    await inside("echo written > /home/by-root");
    const claim = await core.readNamespacedPersistentVolumeClaim({
      name: objectNames(environment.id).claim,
      namespace,
    });
    const volume = await core.readPersistentVolume({ name: claim.spec?.volumeName ?? "" });
    const onNode = join(volume.spec?.hostPath?.path ?? "", "home", "by-root");
    assert.equal(statSync(onNode).uid, 100000, `${onNode} belongs to the remapped root on the node`);

    // Neither the CVM nor its inner engine sees a process of the supervisor or of the node.
    const processes = async (command: string) => (await inside(command)).split("\n").filter(Boolean);
    const seen = [
      ...(await processes("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")),
      ...(await processes(
        "docker run --rm --pid=host cvm/hello sh -c 'for p in /proc/[0-9]*; do cat $p/cmdline; echo; done'",
      )),
    ];
    for (const foreign of [/cvm supervisor/, /kubelet/, /containerd --config/, /\/var\/lib\/cvm\/runtime\/engine/]) {
      assert.ok(!seen.some((line) => foreign.test(line)), `no process matching ${foreign} is visible inside`);
    }
    // No socket or file of the supervisor's engine.
    const reach = await cvm(["ssh", "dev", "--", "sh", "-c", "ls /var/lib/cvm/runtime/engine/docker.sock"]);
    assert.notEqual(reach.code, 0, "the supervisor's engine socket does not exist in the CVM");
  });

  test("stop, then start: a file in home and an image of the inner Docker survive", async () => {
    await inside("echo kept > /home/dev/kept && docker tag cvm/hello cvm/kept:1");
    await admin.stopEnvironment(environment.id);
    assert.equal((await until(["stopped", "failed"])).state, "stopped");
    await assert.rejects(core.readNamespacedPod({ name: objectNames(environment.id).pod, namespace }), { code: 404 });
    await admin.startEnvironment(environment.id);
    const running = await until(["running", "failed"]);
    assert.equal(running.state, "running", running.stateReason);
    assert.equal((await inside("cat /home/dev/kept")).trim(), "kept");
    assert.match(await inside("docker image ls --format '{{.Repository}}:{{.Tag}}'"), /^cvm\/kept:1$/m);
  });

  // ------------------------------------------------------------------ k8s-ws: issue 12 on a Pod
  /**
   * Issue 12 on the Pod: what a person living in the CVM uses, through the
   * server in the cluster and the Kubernetes exec API, with the real clients
   * (`cvm config-ssh`, OpenSSH's ssh, scp, sftp, ssh-agent, `cvm
   * port-forward`). The CVM was made with 1 CPU and 2 GiB.
   */
  describe("a workspace people live in, on a Pod: ssh NAME.cvm, agent forwarding, ports, its own /proc, usage", () => {
    let home: string;
    let env: Record<string, string>;
    let sshConfig: string;
    let agentSocket: string;
    let agent: ChildProcess | undefined;
    const ssh = (args: string[], input?: string) =>
      runToEnd("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", ...args], { env, input });
    /** ssh -A with this machine's agent. */
    const sshWithAgent = (host: string, command: string) =>
      runToEnd("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "-A", host, command], {
        env: { ...env, SSH_AUTH_SOCK: agentSocket },
      });

    before(async () => {
      home = mkdtempSync(join(tmpdir(), "cvm-real-node-home-"));
      mkdirSync(join(home, ".ssh"), { mode: 0o700 });
      env = { HOME: home, CVM_URL: url, CVM_TOKEN: admin.token ?? "", CVM_CONFIG_DIR: join(home, ".config", "cvm") };
      assert.match(await ok(cvmBin, ["config-ssh"], { env }), /ssh dev\.cvm/);
      sshConfig = join(home, ".ssh", "config");
      // This machine's agent, holding one key, for ssh -A.
      agentSocket = join(home, "agent.sock");
      agent = spawn("ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" });
      for (let i = 0; i < 50 && !existsSync(agentSocket); i++) await sleep(100);
      await ok("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(home, "id")]);
      await ok("ssh-add", [join(home, "id")], { env: { SSH_AUTH_SOCK: agentSocket } });
    });

    after(() => {
      agent?.kill();
      if (home) rmSync(home, { recursive: true, force: true });
    });

    test("ssh dev.cvm: the image's user in its home, exit codes, stderr apart, stdin, a pty; root when asked", async () => {
      const result = await ssh(["dev.cvm", "id -un; pwd; echo oops >&2; exit 7"]);
      assert.equal(result.code, 7, result.stderr);
      assert.equal(result.stdout, "dev\n/home/dev\n");
      assert.equal(result.stderr.trim(), "oops");
      assert.equal((await ssh(["root@dev.cvm", "id -un; pwd"])).stdout, "root\n/root\n");
      assert.equal((await ssh(["dev.cvm", "wc -c"], "twelve bytes")).stdout.trim(), "12");
      const sent = await ssh(["-o", "SetEnv=GREETING=from-laptop", "dev.cvm", 'echo "$GREETING"']);
      assert.equal(sent.stdout, "from-laptop\n", sent.stderr);
      const terminal = await ssh(["-tt", "dev.cvm", "tty"]);
      assert.equal(terminal.code, 0, terminal.stderr);
      assert.match(terminal.stdout, /^\/dev\/pts\/\d+\r\n/);

      // The benchmark's round trip: `ssh NAME.cvm true` against `cvm ssh NAME -- true`, taken in turns in
      // the same run; `cvm env list` (the CLI's start and one API call) is the floor under both.
      const times: Record<"ssh" | "cvm" | "floor", number[]> = { ssh: [], cvm: [], floor: [] };
      const timed = async (kind: keyof typeof times, command: () => Promise<unknown>) => {
        const started = performance.now();
        await command();
        times[kind].push(performance.now() - started);
      };
      for (let i = 0; i < 5; i++) {
        await timed("ssh", () => ok("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "dev.cvm", "true"], { env }));
        await timed("cvm", () => ok(cvmBin, ["ssh", "dev", "--", "true"], { env }));
        await timed("floor", () => ok(cvmBin, ["env", "list"], { env }));
      }
      const median = (values: number[]) => values.sort((x, y) => x - y)[2].toFixed(0);
      console.log(
        `  ssh dev.cvm true: ${median(times.ssh)} ms; cvm ssh dev -- true: ${median(times.cvm)} ms; cvm env list: ${median(times.floor)} ms (medians of 5, in turns)`,
      );
    });

    test("scp and sftp copy both ways as the user; ssh -L reaches a server on the CVM's loopback", async () => {
      const local = join(home, "files");
      mkdirSync(local);
      writeFileSync(join(local, "hello.txt"), "hello through scp\n");
      const scp = (from: string, to: string) => ok("scp", ["-F", sshConfig, "-o", "BatchMode=yes", from, to], { env });
      await scp(join(local, "hello.txt"), "dev.cvm:hello.txt");
      assert.equal(
        (await ssh(["dev.cvm", "stat -c '%U %n' ~/hello.txt; cat ~/hello.txt"])).stdout,
        "dev /home/dev/hello.txt\nhello through scp\n",
      );
      await scp("dev.cvm:hello.txt", join(local, "back.txt"));
      assert.equal(readFileSync(join(local, "back.txt"), "utf8"), "hello through scp\n");
      const batch = await runToEnd("sftp", ["-F", sshConfig, "-o", "BatchMode=yes", "-b", "-", "dev.cvm"], {
        env,
        input: "mkdir sftp-dir\nput " + join(local, "hello.txt") + " sftp-dir/a.txt\nls sftp-dir\n",
      });
      assert.equal(batch.code, 0, batch.stderr);
      assert.match(batch.stdout, /sftp-dir\/a\.txt/);

      await ok("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "dev.cvm", echoServer(18081)], { env });
      await withSshTunnel({ config: sshConfig, host: "dev.cvm", env }, [18081], async ([local], said) => {
        assert.equal(await firstAnswerThrough(local, "hi there\n"), "echo from inside: hi there\n", said());
      });
    });

    test("agent forwarding: ssh -A gives a socket of the user's inside that reaches this machine's agent, gone after", async () => {
      const result = await sshWithAgent(
        "dev.cvm",
        `stat -c '%U %a' "$SSH_AUTH_SOCK" "$(dirname "$SSH_AUTH_SOCK")"; ${agentProbe}; ${agentProbe}`,
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "dev 600\ndev 700\nanswer=12 keys=1\nanswer=12 keys=1\n");
      // The socket, its directory and the relay inside end with the SSH connection.
      const leftovers =
        "ls -d /tmp/cvm-ssh-* 2>/dev/null; for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'IO::Socket::UNI[X]' && echo relay $p; done; true";
      let left = "";
      for (let i = 0; i < 50; i++) {
        left = await inside(leftovers);
        if (left.trim() === "") break;
        await sleep(200);
      }
      assert.equal(left.trim(), "", "nothing of the agent's socket is left inside");
      assert.equal((await ssh(["dev.cvm", 'echo "[$SSH_AUTH_SOCK]"'])).stdout, "[]\n", "no agent unless asked");
    });

    test("a standard environment's Pod: ssh as the image's user with its groups, root when asked, agent forwarding", async () => {
      const plain = await admin.createEnvironment({
        name: "plain",
        image: cvmImage,
        cvm: false,
        cpu: 0.5,
        memoryGiB: 1,
      });
      try {
        let state = plain.state;
        for (let i = 0; i < 600 && state !== "running" && state !== "failed"; i++) {
          await sleep(500);
          state = (await admin.environment(plain.id)).state;
        }
        assert.equal(state, "running", (await admin.environment(plain.id)).stateReason);
        await ok(cvmBin, ["config-ssh"], { env });
        const who = await ssh(["plain.cvm", "id -un; id -Gn; echo $HOME"]);
        assert.equal(who.code, 0, who.stderr);
        const [name, groups, userHome] = who.stdout.split("\n");
        assert.equal(name, "dev");
        assert.match(groups, /\bsudo\b/);
        assert.equal(userHome, "/home/dev");
        assert.equal((await ssh(["root@plain.cvm", "id -un"])).stdout, "root\n");
        const agent = await sshWithAgent("plain.cvm", `stat -c '%U %a' "$SSH_AUTH_SOCK"; ${agentProbe}`);
        assert.equal(agent.code, 0, agent.stderr);
        assert.equal(agent.stdout, "dev 600\nanswer=12 keys=1\n");
      } finally {
        await admin.deleteEnvironment(plain.id);
      }
    });

    test("ports: listed live from inside, cvm port-forward from this machine, and the owner's path through the server", async () => {
      await ok("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "dev.cvm", httpServer(18080)], { env });
      let listed: Awaited<ReturnType<CvmClient["ports"]>>["items"] = [];
      for (let i = 0; i < 50 && !listed.some((p) => p.port === 18080); i++) {
        listed = (await admin.ports("dev")).items;
        if (!listed.some((p) => p.port === 18080)) await sleep(200);
      }
      const port = listed.find((p) => p.port === 18080);
      assert.deepEqual(port?.addresses, ["127.0.0.1"], JSON.stringify(listed));
      assert.equal(port?.listening, true);

      const local = await freePort();
      const forward = spawn(cvmBin, ["port-forward", "dev", `${local}:18080`], { env: { ...process.env, ...env } });
      let said = "";
      forward.stdout.on("data", (chunk) => {
        said += chunk;
      });
      forward.stderr.on("data", (chunk) => {
        said += chunk;
      });
      try {
        for (let i = 0; i < 300 && !said.includes("Forwarding"); i++) await sleep(100);
        assert.match(said, new RegExp(`Forwarding 127\\.0\\.0\\.1:${local} -> dev:18080`));
        const answer = await fetch(`http://127.0.0.1:${local}/through/forward`);
        assert.equal(await answer.text(), "hello from inside at /through/forward\n");
      } finally {
        forward.kill();
      }

      const owner = await fetch(`${url}${port?.path}some/page`, {
        headers: { authorization: `Bearer ${admin.token}` },
      });
      assert.equal(owner.status, 200);
      assert.equal(await owner.text(), "hello from inside at /some/page\n");
      const anonymous = await fetch(`${url}${port?.path}`, { redirect: "manual" });
      assert.notEqual(anonymous.status, 200, "private to the owner");
      const nothing = await fetch(`${url}${port?.path.replace("18080", "9")}`, {
        headers: { authorization: `Bearer ${admin.token}` },
      });
      assert.equal(nothing.status, 503);
      assert.match(await nothing.text(), /Nothing listens on port 9 in dev/);
    });

    test("its own /proc (LXCFS in the supervisor): free -m, meminfo, cpuinfo, online CPUs and uptime are the CVM's 1 CPU and 2 GiB", async () => {
      // nproc answers OMP_NUM_THREADS, which every session gets at the CVM's CPUs (src/core/login-account.ts):
      // the affinity it counts otherwise is the node's, as the Pod has no cpuset. glibc's online count
      // reads LXCFS's file, which the start gate keeps over the CVM's own sysfs.
      assertOwnProc(await inside(ownProcScript), { cpus: 1, memoryMiB: 2048 });
      const log = await buildLog();
      assert.ok(
        log.some((line) => /^\/proc: lxcfs serves /.test(line)),
        log.join("\n"),
      );
    });

    test("usage: CPU, memory and disks against the limits, in the API and cvm env show", async () => {
      const usage = await admin.usage("dev");
      assert.equal(usage.cpu.limitCores, 1);
      assert.equal(usage.memory.limitBytes, 2 * 2 ** 30);
      assert.ok(usage.memory.usedBytes > 0 && usage.memory.usedBytes < 2 * 2 ** 30, String(usage.memory.usedBytes));
      assert.ok(
        usage.disks.some((d) => d.path === "/" && d.sizeBytes > 0),
        JSON.stringify(usage.disks),
      );
      const shown = await ok(cvmBin, ["env", "show", "dev"], { env });
      assert.match(shown, /^cpu: +[\d.]+ cores? of 1(\.0)? cores?$/m);
      assert.match(shown, /^memory: +\d+ MiB of 2\.0 GiB$/m);
    });
  });

  // ------------------------------------------------------------------ end of k8s-ws

  test("bad input: an image the node cannot pull, a runtime the node lacks: failed, the reason in the log, no Pod left", async () => {
    const failsWith = async (name: string, image: string, reason: RegExp) => {
      const created = await admin.createEnvironment({ name, image, cvm: true, cpu: 0.5, memoryGiB: 1 });
      let failed: Environment | undefined;
      const deadline = Date.now() + 10 * 60_000;
      while (Date.now() < deadline) {
        failed = await admin.environment(created.id);
        if (failed.state === "failed" || failed.state === "running") break;
        await sleep(500);
      }
      assert.equal(failed?.state, "failed", `${name} should fail`);
      assert.match(failed?.stateReason ?? "", reason);
      const log: string[] = [];
      for await (const line of admin.logs(created.id)) if (!("end" in line)) log.push(line.text);
      assert.ok(
        log.some((line) => reason.test(line)),
        `the build log says why:\n${log.join("\n")}`,
      );
      await assert.rejects(
        core.readNamespacedPod({ name: objectNames(created.id).pod, namespace }),
        { code: 404 },
        "a failed build leaves no Pod",
      );
      await admin.deleteEnvironment(created.id);
    };
    await failsWith(
      "no-image",
      cvmImage.replace(/\/cvm\/[^/]+$/, "/cvm/no-such-image:1"),
      /not found|manifest unknown/i,
    );

    // sysbox on a node that has none: the checks name it before a CVM is tried, and the CVM fails saying so.
    await admin.updateInfrastructure({ runtime: "sysbox" });
    try {
      const checks = await admin.infrastructureChecks();
      const os = checks.checks.find((c) => c.id === "node-os");
      // A warning (sysbox is supported on Ubuntu nodes) naming the node, before any CVM is tried.
      assert.notEqual(os?.status, "pass", JSON.stringify(os));
      assert.match(os?.evidence ?? "", new RegExp(`${kube.node?.name ?? "node"}.*sysbox`));
      await failsWith("no-sysbox", cvmImage, /sysbox-runc/);
    } finally {
      await admin.updateInfrastructure({ runtime: "auto" });
    }
  });

  test("delete leaves no Pod, claim or Secret, and on the node no container, mount, loop device or cgroup", async () => {
    const names = objectNames(environment.id);
    const pod = await core.readNamespacedPod({ name: names.pod, namespace });
    const uid = pod.metadata?.uid ?? "";
    await admin.deleteEnvironment(environment.id);
    await until(["deleted"]).catch(() => undefined);
    await assert.rejects(core.readNamespacedPod({ name: names.pod, namespace }), { code: 404 });
    await assert.rejects(core.readNamespacedPersistentVolumeClaim({ name: names.claim, namespace }), { code: 404 });
    await assert.rejects(core.readNamespacedSecret({ name: names.secret, namespace }), { code: 404 });

    // The kubelet tears a deleted Pod down after the API object is gone: give it a moment.
    const node = kube.node;
    assert.ok(node);
    const leftovers = async () => {
      const containers = await node.ctr(["containers", "ls", `labels."io.kubernetes.pod.uid"==${uid}`]);
      const mounts = readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter((line) => line.includes(uid));
      const loops = (await run("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"])).stdout
        .split("\n")
        .filter((file) => file.includes(uid));
      const cgroups = readdirSync("/sys/fs/cgroup").flatMap((hierarchy) => {
        const qos = join("/sys/fs/cgroup", hierarchy, "cvm-test-node", "kubepods");
        if (!existsSync(qos)) return [];
        return [qos, ...["burstable", "besteffort"].map((c) => join(qos, c))]
          .filter((dir) => existsSync(join(dir, `pod${uid}`)))
          .map((dir) => join(dir, `pod${uid}`));
      });
      return [...containers.split("\n").slice(1).filter(Boolean), ...mounts, ...loops, ...cgroups];
    };
    const deadline = Date.now() + 60_000;
    let left = await leftovers();
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(1000);
      left = await leftovers();
    }
    assert.deepEqual(left, [], "nothing of the CVM's Pod is left on the node");
  });
});
