import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const webRoot = fileURLToPath(new URL(".", import.meta.url));

/** The dashboard: built into web/dist, which `cvm server` serves at its root. */
export default defineConfig({
  root: webRoot,
  base: "/",
  plugins: [react()],
  // The client and the types live in ../src; Vite may read them.
  server: { fs: { allow: [fileURLToPath(new URL("..", import.meta.url))] } },
  build: {
    outDir: fileURLToPath(new URL("./dist", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
    // The timing report fires on any busy machine (CI shares its cores); it is noise in test output.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
});
