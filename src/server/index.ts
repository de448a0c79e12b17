export interface ServerOptions {
  /** host:port; port 0 picks a free one. Default 127.0.0.1:7080. */
  listen: string;
  dataDir: string;
  postgresUrl?: string;
  provider: "docker" | "kubernetes";
  dockerHost?: string;
  kubeconfig?: string;
  namespace?: string;
  logLevel?: string;
}

export interface RunningServer {
  /** Base URL, such as http://127.0.0.1:7080 */
  url: string;
  close(): Promise<void>;
}

/** (Stub: the server's owner replaces it.) */
export async function startServer(_options: ServerOptions): Promise<RunningServer> {
  throw new Error("server: not implemented yet");
}
