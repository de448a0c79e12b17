/**
 * The one typed client of cvm's API, used by the CLI, the dashboard and the
 * tests alike. Runs in Node and the browser: fetch only.
 */

import type {
  AuditPage,
  BuildInfo,
  BuildList,
  CheckProgress,
  ChecksResponse,
  CreatedToken,
  CreateEnvironmentRequest,
  CreateTokenRequest,
  CreateUserRequest,
  EnvironmentEvent,
  EnvironmentList,
  EnvironmentQuery,
  FirstAdminRequest,
  InfrastructureSettingsUpdate,
  LoginRequest,
  LogStreamItem,
  PageQuery,
  PoolsStatus,
  PoolUpdateRequest,
  RebuildRequest,
  ReconcileReport,
  SessionResponse,
  SetupStatus,
  TokenList,
  UpdateUserRequest,
  UserList,
  UserQuery,
} from "../api/contract.js";
import { apiPrefix } from "../api/contract.js";
import type {
  AccountInfo,
  IdleStatus,
  PortList,
  SetPortShareRequest,
  SshHostKey,
  UsageReport,
} from "../api/workspace-schemas.js";
import type { AuditFilter } from "../core/audit.js";
import type { Environment } from "../core/environment.js";
import type { ErrorBody } from "../core/errors.js";
import type { InfrastructureSettings } from "../core/settings.js";
import type { User } from "../core/user.js";

/** An error answered by the API, with its status and body. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

/** What the client sends: fetch's RequestInit has these, and so does any other transport. */
export interface TransportRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  credentials?: RequestCredentials;
}

/** What the client reads of an answer: fetch's Response has it. */
export interface TransportResponse {
  ok: boolean;
  status: number;
  statusText: string;
  text(): Promise<string>;
  json(): Promise<unknown>;
  /** For streamed answers (NDJSON). */
  body: ReadableStream<Uint8Array> | null;
}

/** How requests travel: fetch by default; the CLI brings one that lets its process exit at once. */
export type Transport = (url: string, request: TransportRequest) => Promise<TransportResponse>;

export interface ClientOptions {
  /** The server's base URL, such as http://127.0.0.1:7080; empty for same-origin (dashboard). */
  baseUrl: string;
  token?: string;
  /** Sent as User-Agent where the runtime allows (Node; browsers send their own). */
  userAgent?: string;
  fetch?: Transport;
  /** Called on every 401, so a dashboard can return to its login page. */
  onUnauthorized?: (body: ErrorBody) => void;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== "");
  if (entries.length === 0) return "";
  return `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}`;
}

async function* ndjson<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line) as T;
        newline = buffered.indexOf("\n");
      }
    }
    if (buffered.trim()) yield JSON.parse(buffered) as T;
  } finally {
    reader.releaseLock();
  }
}

/**
 * The items of a paged list, page after page, until the last page or `max`
 * items: `read` asks for one page (`limit` items after `cursor`).
 */
export async function collectPages<T>(
  read: (page: PageQuery) => Promise<{ items: T[]; nextCursor?: string }>,
  options: { max?: number; pageSize?: number } = {},
): Promise<T[]> {
  const max = options.max ?? Number.POSITIVE_INFINITY;
  const pageSize = options.pageSize ?? 100;
  const items: T[] = [];
  let cursor: string | undefined;
  while (items.length < max) {
    const page = await read({ limit: Math.min(pageSize, max - items.length), cursor });
    items.push(...page.items.slice(0, max - items.length));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return items;
}

export class CvmClient {
  readonly baseUrl: string;
  token?: string;
  readonly userAgent?: string;
  private readonly fetchImpl: Transport;
  private readonly onUnauthorized?: (body: ErrorBody) => void;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/$/, "");
    this.token = options.token;
    this.userAgent = options.userAgent;
    // globalThis.fetch is read at the first request: in Node, reading it loads fetch's implementation.
    this.fetchImpl = options.fetch ?? ((url, request) => globalThis.fetch(url, request));
    this.onUnauthorized = options.onUnauthorized;
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    init: { signal?: AbortSignal } = {},
  ): Promise<TransportResponse> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.userAgent) headers["user-agent"] = this.userAgent;
    const response = await this.fetchImpl(`${this.baseUrl}${apiPrefix}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      ...init,
    });
    if (!response.ok) {
      const text = await response.text();
      let errorBody: ErrorBody;
      try {
        errorBody = JSON.parse(text) as ErrorBody;
      } catch {
        errorBody = { message: text || response.statusText };
      }
      if (response.status === 401) this.onUnauthorized?.(errorBody);
      throw new ApiError(response.status, errorBody);
    }
    return response;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.send(method, path, body);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  buildInfo = () => this.json<BuildInfo>("GET", "/buildinfo");

  // Accounts and sessions
  setupStatus = () => this.json<SetupStatus>("GET", "/setup");
  createFirstAdmin = (request: FirstAdminRequest) => this.json<SessionResponse>("POST", "/setup/first-admin", request);
  login = (credentials: LoginRequest) => this.json<SessionResponse>("POST", "/auth/login", credentials);
  logout = () => this.json<void>("POST", "/auth/logout");
  whoami = () => this.json<User>("GET", "/users/me");
  listTokens = () => this.json<TokenList>("GET", "/tokens");
  createToken = (request: CreateTokenRequest) => this.json<CreatedToken>("POST", "/tokens", request);
  revokeToken = (id: string) => this.json<void>("DELETE", `/tokens/${encodeURIComponent(id)}`);

  // Users (admin)
  listUsers = (q: UserQuery = {}) => this.json<UserList>("GET", `/users${query({ ...q })}`);
  createUser = (request: CreateUserRequest) => this.json<User>("POST", "/users", request);
  updateUser = (id: string, request: UpdateUserRequest) =>
    this.json<User>("PATCH", `/users/${encodeURIComponent(id)}`, request);

  // Infrastructure
  infrastructure = () => this.json<InfrastructureSettings>("GET", "/settings/infrastructure");
  updateInfrastructure = (update: InfrastructureSettingsUpdate) =>
    this.json<InfrastructureSettings>("PUT", "/settings/infrastructure", update);
  /** `images`: CVM images the trial Pod asks for beside the warm pools' (Kubernetes). */
  infrastructureChecks = (images: string[] = []) =>
    this.json<ChecksResponse>("GET", `/settings/infrastructure/checks${query({ images: images.join(",") })}`);
  pools = () => this.json<PoolsStatus>("GET", "/pools");
  setPool = (pool: PoolUpdateRequest) => this.json<PoolsStatus>("PUT", "/pools", pool);

  /** The same checks, each told as it starts and as it ends, then the worst result. */
  async *infrastructureChecksProgress(signal?: AbortSignal): AsyncGenerator<CheckProgress> {
    const response = await this.send("GET", "/settings/infrastructure/checks/progress", undefined, { signal });
    if (!response.body) return;
    yield* ndjson<CheckProgress>(response.body);
  }
  audit = (filter: AuditFilter & { limit?: number; cursor?: string } = {}) =>
    this.json<AuditPage>(
      "GET",
      `/audit${query({
        actor: filter.actorId,
        action: filter.action,
        target: filter.target,
        since: filter.since,
        until: filter.until,
        limit: filter.limit,
        cursor: filter.cursor,
      })}`,
    );
  /** A snapshot of the store (site admins), as bytes to write to a file. */
  backup = async (): Promise<ReadableStream<Uint8Array>> => {
    const response = await this.send("GET", "/admin/backup");
    if (!response.body) throw new ApiError(502, { message: "The server answered the backup without a body" });
    return response.body;
  };
  reconcile = (removeOrphans = false) =>
    this.json<ReconcileReport>("POST", `/admin/reconcile${query({ removeOrphans: removeOrphans ? 1 : undefined })}`);

  // Environments; `ref` is an environment's id, or the name of one of the caller's own.
  listEnvironments = (q: EnvironmentQuery = {}) => this.json<EnvironmentList>("GET", `/environments${query({ ...q })}`);
  createEnvironment = (request: CreateEnvironmentRequest) => this.json<Environment>("POST", "/environments", request);
  environment = (ref: string) => this.json<Environment>("GET", `/environments/${encodeURIComponent(ref)}`);
  startEnvironment = (ref: string) => this.json<Environment>("POST", `/environments/${encodeURIComponent(ref)}/start`);
  stopEnvironment = (ref: string) => this.json<Environment>("POST", `/environments/${encodeURIComponent(ref)}/stop`);
  rebuildEnvironment = (ref: string, request: RebuildRequest = {}) =>
    this.json<Environment>("POST", `/environments/${encodeURIComponent(ref)}/rebuild`, request);
  deleteEnvironment = (ref: string, options: { keepHome?: boolean } = {}) =>
    this.json<void>(
      "DELETE",
      `/environments/${encodeURIComponent(ref)}${query({ keepHome: options.keepHome ? 1 : undefined })}`,
    );
  builds = (ref: string) => this.json<BuildList>("GET", `/environments/${encodeURIComponent(ref)}/builds`);

  /** The build log's lines, then (when following) the lines as they come, until the build ends. */
  async *logs(
    ref: string,
    options: { build?: string; after?: number; follow?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<LogStreamItem> {
    const response = await this.send(
      "GET",
      `/environments/${encodeURIComponent(ref)}/logs${query({
        build: options.build,
        after: options.after,
        follow: options.follow ? 1 : undefined,
      })}`,
      undefined,
      { signal: options.signal },
    );
    if (!response.body) return;
    yield* ndjson<LogStreamItem>(response.body);
  }

  /** Environment changes as they happen; ends when the signal aborts. */
  async *events(signal?: AbortSignal): AsyncGenerator<EnvironmentEvent> {
    const response = await this.send("GET", "/events", undefined, { signal });
    if (!response.body) return;
    yield* ndjson<EnvironmentEvent>(response.body);
  }

  /** The WebSocket URL of an environment's terminal or of one command run in it. */
  sshHostKey = () => this.json<SshHostKey>("GET", "/ssh/host-key");
  account = (ref: string) => this.json<AccountInfo>("GET", `/environments/${encodeURIComponent(ref)}/account`);
  usage = (ref: string) => this.json<UsageReport>("GET", `/environments/${encodeURIComponent(ref)}/usage`);
  idle = (ref: string) => this.json<IdleStatus>("GET", `/environments/${encodeURIComponent(ref)}/idle`);
  /** The environment's own idle time in minutes (0: never), or null for the site's. */
  setIdle = (ref: string, minutes: number | null) =>
    this.json<IdleStatus>("PUT", `/environments/${encodeURIComponent(ref)}/idle`, { minutes });
  ports = (ref: string) => this.json<PortList>("GET", `/environments/${encodeURIComponent(ref)}/ports`);
  setPortShare = (ref: string, port: number, request: SetPortShareRequest) =>
    this.json<{ port: number; share: SetPortShareRequest["share"] }>(
      "PUT",
      `/environments/${encodeURIComponent(ref)}/ports/${port}`,
      request,
    );

  /** The WebSocket that carries one TCP connection to a port inside (what `cvm port-forward` opens). */
  portConnectUrl(ref: string, port: number): string {
    return this.webSocketUrl(`/environments/${encodeURIComponent(ref)}/ports/${port}/connect`);
  }

  /** The WebSocket URL of an API path (ws: for http:, wss: for https:). */
  webSocketUrl(path: string): string {
    const base = this.baseUrl || globalThis.location?.origin || "";
    return `${base.replace(/^http/, "ws")}${apiPrefix}${path}`;
  }

  /** The WebSocket that carries one SSH connection's bytes (what `cvm ssh --stdio` opens). */
  sshUrl(ref: string): string {
    return this.webSocketUrl(`/environments/${encodeURIComponent(ref)}/ssh`);
  }

  terminalUrl(
    ref: string,
    options: { command?: string[]; tty?: boolean; cols?: number; rows?: number; user?: "root" } = {},
  ): string {
    const base = this.baseUrl || globalThis.location?.origin || "";
    const wsBase = base.replace(/^http/, "ws");
    return `${wsBase}${apiPrefix}/environments/${encodeURIComponent(ref)}/terminal${query({
      tty: options.tty === false ? 0 : 1,
      cols: options.cols,
      rows: options.rows,
      command: options.command ? JSON.stringify(options.command) : undefined,
      user: options.user,
    })}`;
  }
}
