// Records every module a process loads, one URL a line, into the file named by
// CVM_MODULE_LOG: `node --import ./module-log.mjs ...`. Plain JavaScript so it
// runs in front of the compiled CLI, which has no TypeScript loader. The hook
// sees each ES module and each CommonJS package's entry file, which is enough
// to tell which packages a command pulled in.
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// The hooks run in a thread of their own, which imports this file again.
if (isMainThread) register(import.meta.url);

export async function load(url, context, nextLoad) {
  if (process.env.CVM_MODULE_LOG) appendFileSync(process.env.CVM_MODULE_LOG, `${url}\n`);
  return nextLoad(url, context);
}
