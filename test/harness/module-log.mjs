// Records every module a process loads, one URL a line, into the file named by
// CVM_MODULE_LOG: `node --import ./module-log.mjs ...`. Plain JavaScript so it
// runs in front of the compiled CLI, which has no TypeScript loader. The load
// hook sees each ES module (and a CommonJS package imported as one); at exit
// the CommonJS cache adds every module loaded with require().
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";
import { isMainThread } from "node:worker_threads";

// The hooks run in a thread of their own, which imports this file again.
if (isMainThread) {
  register(import.meta.url);
  const cache = createRequire(import.meta.url).cache;
  process.on("exit", () => {
    const required = Object.keys(cache).map((path) => pathToFileURL(path).href);
    if (process.env.CVM_MODULE_LOG && required.length > 0) {
      appendFileSync(process.env.CVM_MODULE_LOG, `${required.join("\n")}\n`);
    }
  });
}

export async function load(url, context, nextLoad) {
  if (process.env.CVM_MODULE_LOG) appendFileSync(process.env.CVM_MODULE_LOG, `${url}\n`);
  return nextLoad(url, context);
}
