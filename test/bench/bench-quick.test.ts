// `npm run bench -- --quick` end to end, so the benchmark cannot rot: every figure is produced as a
// finite number and the JSON is written. It asserts nothing about speed (DESIGN.md, Testing).
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { requireNetns } from '../netns/guard';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'wrk', 'nginx', 'taskset', 'curl'], { serial: true });
const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** The quick run takes about a minute on an idle 2-core machine; a shared, loaded one is much slower. */
const RUN_DEADLINE_MS = 480_000;

/** Paths (like `dataPlane.unloaded.mesh.p50Us`) of every value that is not a finite number or a string/boolean. */
function nonFinite(value: unknown, at: string, out: string[]): string[] {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) out.push(`${at} = ${value}`);
  } else if (value === null || value === undefined) {
    // JSON turns NaN and Infinity into null.
    out.push(`${at} = ${String(value)}`);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => nonFinite(item, `${at}[${i}]`, out));
  } else if (typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) nonFinite(child, at ? `${at}.${key}` : key, out);
  }
  return out;
}

netnsTest('npm run bench -- --quick produces every figure as a finite number and writes the JSON', async (t) => {
  t.timeout(RUN_DEADLINE_MS + 30_000);
  const child = spawn('npm', ['run', '--silent', 'bench', '--', '--quick'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGTERM'), RUN_DEADLINE_MS);
  t.teardown(() => {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  t.is(code, 0, `bench exited ${String(code)}; stderr: ${stderr.slice(-3000)}; stdout: ${stdout.slice(-3000)}`);

  const written = /^results: (bench\/results\/\S+\.json) /m.exec(stdout);
  t.truthy(written, `no "results:" line in the output: ${stdout.slice(-2000)}`);
  const file = path.join(REPO_ROOT, written![1]!);
  t.teardown(() => rm(file, { force: true }));
  const report = JSON.parse(await readFile(file, 'utf8')) as { quick: boolean; figures: Array<{ figure: string; values: Record<string, number> }> };

  t.true(report.quick);
  t.is(report.figures.length, 9, 'one figure per row of the issue\'s target table');
  for (const figure of report.figures) t.true(Object.keys(figure.values).length > 0, `${figure.figure} has no values`);
  t.deepEqual(nonFinite(report, '', []), [], 'every number in the report is finite');
  // The printed table carries the same figures, each next to its target.
  for (const figure of report.figures) t.true(stdout.includes(figure.figure), `table lacks "${figure.figure}"`);
});
