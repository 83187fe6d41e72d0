// The real mesh-server program as operators run it: a process with flags, a config directory,
// signals. Bad input is rejected with precise errors while the last good config keeps serving.
import test from 'ava';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { analyzeServerCommand } from '../../cli/analyze';
import { AdsClient, type AdsUpdate } from '../../lib/xds/ads-client';
import { TypeUrl } from '../../lib/xds/protos';

const MAIN = path.join(__dirname, '..', '..', 'server', 'main.ts');

interface RunningServer {
  child: ChildProcessWithoutNullStreams;
  xds: string;
  admin: string;
  logs: Array<Record<string, unknown>>;
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

async function startServer(configDir: string): Promise<RunningServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--config-dir', configDir, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--debounce-ms', '50'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
    for (const wake of waiters) wake();
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForLog = (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (found) { cleanup(); resolve(found); }
      };
      const timer = setTimeout(() => { cleanup(); reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr}`)); }, timeoutMs);
      const cleanup = () => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    });
  // Generous: tsx compiles the server on start, which is slow on a busy 2-core machine.
  const serving = await waitForLog((line) => line.msg === 'mesh-server serving', 30_000);
  return { child, xds: serving.xds as string, admin: serving.admin as string, logs, waitForLog, exited };
}

async function poll<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms; last ${JSON.stringify(value).slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function serviceEntry(name: string, port: number, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
spec:
  hosts: [${name}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${port}, name: http, protocol: HTTP }
  endpoints:
    - { address: 127.0.0.1, labels: { version: v1 } }
${extra}`;
}

/** Every wait in these tests has a deadline: a hang becomes a failure that names the step. */
function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function writeAtomically(file: string, text: string | Buffer): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  await writeFile(temporary, text);
  await rename(temporary, file);
}

test.serial('a bad file is rejected whole with precise errors while the last good config keeps serving over xDS', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-server-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeAtomically(path.join(dir, 'orders.yaml'), serviceEntry('orders', 8080));
  const server = await startServer(dir);
  t.teardown(() => { server.child.kill('SIGKILL'); });

  const client = new AdsClient({ target: server.xds, node: { id: 'host-a' } });
  t.teardown(() => client.close());
  const clusters = () => new Set(client.resources(TypeUrl.Cluster).keys());
  client.subscribe(TypeUrl.Cluster, '*');
  await poll('orders cluster', async () => [...clusters()], (names) => names.includes('outbound|8080||orders'), 10_000);
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));

  // The new version adds a service but has a wrong field type: nothing of it may apply.
  const bad = serviceEntry('orders', 8080) + '---\n' + serviceEntry('payments', 9090).replace('resolution: STATIC', 'resolution: STATIC\n  exportTo: "."');
  await writeAtomically(path.join(dir, 'orders.yaml'), bad);
  const issues = await poll('issue reported', async () => (await fetch(`${server.admin}/debug/issues`)).json() as Promise<{ issues: Array<{ severity: string; file: string; document: number; path: string; text: string }> }>,
    (body) => body.issues.some((issue) => issue.severity === 'error'));
  const errors = issues.issues.filter((issue) => issue.severity === 'error');
  t.is(errors.length, 1, JSON.stringify(errors));
  const issue = errors[0]!;
  t.is(issue.file, path.join(dir, 'orders.yaml'));
  t.is(issue.document, 2);
  t.is(issue.path, 'spec.exportTo');
  t.regex(issue.text, /orders\.yaml, document 2 \(ServiceEntry default\/payments\), spec\.exportTo: /);
  const analyze = async () => {
    const out: string[] = [];
    const code = await analyzeServerCommand(server.admin, { output: 'human' }, { stdout: (text) => out.push(text), stderr: (text) => out.push(text) });
    return { code, text: out.join('') };
  };
  const live = await analyze();
  t.is(live.code, 1, 'meshctl analyze --server exits 1 while the server has config errors');
  t.regex(live.text, /^Error \[invalid-type\] .*orders\.yaml, document 2 \(ServiceEntry default\/payments\), spec\.exportTo: /m);
  const metrics = await (await fetch(`${server.admin}/metrics`)).text();
  t.regex(metrics, /^mesh_config_errors\{severity="error"\} 1$/m);
  t.true(clusters().has('outbound|8080||orders'), 'the last good version keeps serving');
  t.false(clusters().has('outbound|9090||payments'), 'nothing of the rejected file applies');
  t.false(updates.some((update) => update.typeUrl === TypeUrl.Cluster), 'clients are not pushed a change for a rejected file');

  // Fixed, the whole file applies. (How fast is measured, not asserted: timing belongs to benchmarks.)
  const fixedAt = Date.now();
  await writeAtomically(path.join(dir, 'orders.yaml'), serviceEntry('orders', 8080) + '---\n' + serviceEntry('payments', 9090));
  await poll('payments cluster', async () => [...clusters()], (names) => names.includes('outbound|9090||payments'), 10_000);
  t.log(`fixed file served to the client after ${Date.now() - fixedAt} ms`);
  const cleared = (await (await fetch(`${server.admin}/debug/issues`)).json()) as { issues: unknown[] };
  t.deepEqual(cleared.issues, []);
  t.is((await analyze()).code, 0);
});

test.serial('garbage on the xDS port, a binary config file and SIGHUP leave the server serving; SIGTERM exits cleanly', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-server-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeAtomically(path.join(dir, 'orders.yaml'), serviceEntry('orders', 8080));
  const server = await startServer(dir);
  t.teardown(() => { server.child.kill('SIGKILL'); });

  // Bytes that are not HTTP/2 at all: the server must answer at the protocol level (an HTTP/2
  // GOAWAY) or hang up, and go on serving everyone else.
  const [host, port] = server.xds.split(':');
  const answer = await within(new Promise<string>((resolve) => {
    const socket = net.connect(Number(port), host, () => socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage')));
    socket.once('data', () => { socket.destroy(); resolve('answered'); });
    socket.once('error', () => resolve('error'));
    socket.once('close', () => resolve('closed'));
  }), 5000, 'the server answers or closes a garbage connection');
  t.log(`garbage on the xDS port: ${answer}`);
  await writeAtomically(path.join(dir, 'blob.yaml'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0xff, 0xfe]));
  const issues = await poll('binary file reported', async () => (await fetch(`${server.admin}/debug/issues`)).json() as Promise<{ issues: Array<{ file: string; message: string }> }>,
    (body) => body.issues.some((issue) => issue.file.endsWith('blob.yaml')));
  t.regex(issues.issues.find((issue) => issue.file.endsWith('blob.yaml'))!.message, /not UTF-8 text \(NUL byte/);

  const client = new AdsClient({ target: server.xds, node: { id: 'host-b' } });
  t.teardown(() => client.close());
  client.subscribe(TypeUrl.Cluster, '*');
  await poll('still serving clusters', async () => client.resources(TypeUrl.Cluster).size, (size) => size > 0);
  t.true(client.resources(TypeUrl.Cluster).has('outbound|8080||orders'));

  server.child.kill('SIGHUP');
  await server.waitForLog((line) => line.msg === 'SIGHUP: reloading config files');
  const reloads = await poll('reload counted', async () => (await fetch(`${server.admin}/metrics`)).text(), (text) => /^mesh_config_reloads_total 1$/m.test(text));
  t.regex(reloads, /^mesh_config_reloads_total 1$/m);

  const disconnected = new Promise<void>((resolve) => client.once('disconnected', () => resolve()));
  server.child.kill('SIGTERM');
  const code = await within(server.exited, 8000, 'exit after SIGTERM');
  t.is(code, 0, 'SIGTERM ends the process with status 0');
  await within(disconnected, 5000, 'the xDS client sees its stream end');
});
