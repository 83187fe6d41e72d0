// CPU time and memory of a process as the kernel accounts them (/proc/PID/stat and /proc/PID/status),
// so every figure of a benchmark comes from the same source whatever the process is (node, nginx).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface ProcessSample {
  /** utime + stime, in ms. */
  cpuMs: number;
  /** VmRSS now, in MB. */
  rssMb: number;
  /** VmHWM (peak RSS since start), in MB. */
  hwmMb: number;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime; 100 on every Linux seen, but asked rather than assumed. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export function sampleProcess(pid: number): ProcessSample {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces); utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuMs: (ticks * 1000) / ticksPerSecond(), rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** CPU used by several processes together since `before`, in ms. */
export function cpuMsSince(pids: readonly number[], before: readonly ProcessSample[]): number {
  return pids.reduce((sum, pid, i) => sum + sampleProcess(pid).cpuMs - before[i]!.cpuMs, 0);
}
