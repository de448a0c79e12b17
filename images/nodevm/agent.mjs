// The node VM's agent: runs the shell commands the host sends over the
// virtio-serial port named cvm.agent, one JSON object a line each way.
//
//   host -> VM  {"id": 1, "command": "stat -fc %T /sys/fs/cgroup"}
//   VM -> host  {"ready": true, "uptime": 4.2}                 once, at start
//               {"id": 1, "stream": "stdout", "data": "..."}   as output arrives
//               {"id": 1, "exit": 0, "signal": null}           at the end
//
// Plain JavaScript for the node binary the image carries: nothing to compile
// or resolve inside a VM that runs under software emulation.

import { spawn } from "node:child_process";
import { createReadStream, createWriteStream, openSync, readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const portName = "cvm.agent";
const ports = "/sys/class/virtio-ports";
const port = readdirSync(ports).find((p) => readFileSync(`${ports}/${p}/name`, "utf8").trim() === portName);
if (!port) throw new Error(`no virtio-serial port named ${portName}`);

// One open file for both ways: a virtio-serial port can be open only once at a time.
const fd = openSync(`/dev/${port}`, "r+");
const output = createWriteStream(null, { fd, autoClose: false });
const send = (message) => output.write(`${JSON.stringify(message)}\n`);

const lines = createInterface({ input: createReadStream(null, { fd, autoClose: false }) });
lines.on("line", (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return;
  }
  const child = spawn("/bin/sh", ["-c", request.command], {
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", LANG: "C.UTF-8" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of ["stdout", "stderr"]) {
    child[stream].setEncoding("utf8");
    child[stream].on("data", (data) => send({ id: request.id, stream, data }));
  }
  child.on("error", (error) => send({ id: request.id, stream: "stderr", data: `${error.message}\n` }));
  child.on("close", (code, signal) => send({ id: request.id, exit: code, signal }));
});

send({ ready: true, uptime: Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) });
