// The real `docker` binary (whatever is on the PATH) against an Engine API
// address, with a throwaway DOCKER_CONFIG so the user's config and contexts
// never matter. Never starts a daemon: only the client runs.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface DockerTarget {
  /** DOCKER_HOST: "unix:///path/docker.sock" or "tcp://127.0.0.1:PORT". */
  host: string;
  /** A directory with ca.pem, cert.pem and key.pem: TLS with verification (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH). */
  certDir?: string;
}

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One config dir per process, removed at exit: no docker run reads the user's ~/.docker. */
let configDir: string | undefined;
function dockerConfig(): string {
  if (!configDir) {
    const dir = mkdtempSync(join(tmpdir(), "vipmesh-docker-config-"));
    configDir = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return configDir;
}

/** The environment a docker command runs with against `target`. */
export function dockerEnv(target: DockerTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: target.host, DOCKER_CONFIG: dockerConfig(), DOCKER_CLI_HINTS: "false" };
  for (const k of ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS", "DOCKER_API_VERSION"]) delete env[k];
  if (target.certDir) Object.assign(env, { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: target.certDir });
  return env;
}

/** Starts `docker ARGS…` and leaves it running (`logs -f`, say); the caller kills it. */
export function startDocker(target: DockerTarget, args: readonly string[], stdin?: string): ChildProcess {
  const child = spawn("docker", args, { env: dockerEnv(target), stdio: ["pipe", "pipe", "pipe"] });
  child.stdin?.end(stdin ?? "");
  return child;
}

/** Runs `docker ARGS…` to its end (killed after `timeoutMs`, default 30 s) and gives its exit code and output. */
export function docker(target: DockerTarget, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = startDocker(target, args, options.stdin);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run docker (is it on the PATH?): ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}killed by ${signal} (timeout)\n` : stderr });
    });
  });
}

/** Like docker(), but throws with its output unless it exits 0; gives stdout. */
export async function dockerOk(target: DockerTarget, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await docker(target, args, options);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}
