// nginx for the data-plane benchmark, never the system service: a private prefix directory with
// its own config, pid and logs, one worker, started in the foreground so its PID is the child's.
// Two roles: the app (1 KB responses) and the reference reverse proxy (upstream keep-alive).
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The response body every path returns: 1 KB, as the issue asks. */
export const RESPONSE_BYTES = 1024;

export function appConfig(prefix: string, ports: readonly number[]): string {
  return common(prefix, 'app', `
    server {
${ports.map((port) => `      listen ${port} reuseport;`).join('\n')}
      location / { default_type text/plain; return 200 "${'x'.repeat(RESPONSE_BYTES)}"; }
    }`);
}

/**
 * The reference proxy: what an operator would write for a keep-alive reverse proxy. `keepalive`
 * plus HTTP/1.1 and an empty Connection header is nginx's documented way to reuse upstream connections.
 */
export function proxyConfig(prefix: string, listenPort: number, upstream: string): string {
  return common(prefix, 'proxy', `
    upstream app { server ${upstream}; keepalive 64; keepalive_requests 1000000; }
    server {
      listen ${listenPort} reuseport;
      location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }`);
}

function common(prefix: string, role: string, http: string): string {
  // user root: the private prefix is root's temp dir; workers as nobody could not write its temp files.
  return `user root;
worker_processes 1;
daemon off;
pid ${path.join(prefix, `${role}.pid`)};
error_log ${path.join(prefix, `${role}-error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${path.join(prefix, `${role}-body`)};
  proxy_temp_path ${path.join(prefix, `${role}-proxy`)};
  fastcgi_temp_path ${path.join(prefix, `${role}-fastcgi`)};
  uwsgi_temp_path ${path.join(prefix, `${role}-uwsgi`)};
  scgi_temp_path ${path.join(prefix, `${role}-scgi`)};
${http}
}
`;
}

/** Writes `config` under the prefix and returns the nginx command line that runs it. */
export function nginxCommand(prefix: string, role: string, config: string): string[] {
  const file = path.join(prefix, `${role}.conf`);
  fs.writeFileSync(file, config);
  // -e: the error log from the first moment, before the config is read (else the compiled-in path).
  return ['nginx', '-p', prefix, '-e', path.join(prefix, `${role}-error.log`), '-c', file];
}

/** The worker processes of an nginx master (their parent PID is the master's), found in /proc. */
export function nginxWorkers(masterPid: number): number[] {
  const workers: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === masterPid) workers.push(Number(entry));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return workers;
}

/** Resolves once the master has a worker and its pid file exists, or rejects with its error log. */
export async function waitForNginx(child: ChildProcess, prefix: string, role: string, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const workers = child.pid === undefined ? [] : nginxWorkers(child.pid);
    if (workers.length > 0 && fs.existsSync(path.join(prefix, `${role}.pid`))) return workers;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let log = '';
  try {
    log = fs.readFileSync(path.join(prefix, `${role}-error.log`), 'utf8').slice(-2000);
  } catch {
    log = '(no error log)';
  }
  throw new Error(`nginx (${role}) did not start within ${timeoutMs} ms (exit ${String(child.exitCode)}); error log: ${log}`);
}
