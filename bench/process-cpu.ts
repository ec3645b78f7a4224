/**
 * CPU seconds spent by each process on this machine between two snapshots, grouped as the bench
 * reads them: this Node process (the functions of the local runtime), the emulator, the Python
 * workers, and everything else. Linux only (/proc); elsewhere a snapshot is empty and the bench
 * says so.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";

export type CpuGroup = "this process (functions)" | "emulator" | "python workers" | "other";

/** CPU seconds (user + system) per pid, with the group each pid belongs to. */
export type CpuSnapshot = ReadonlyMap<number, { readonly group: CpuGroup; readonly seconds: number }>;

const clockTicks = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const ticks = Number(r.stdout?.trim());
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

function groupOf(pid: number, cmdline: string): CpuGroup {
  if (pid === process.pid) return "this process (functions)";
  if (/moto/.test(cmdline)) return "emulator";
  if (/python/.test(cmdline) && /serverless_tf|feed_rate/.test(cmdline)) return "python workers";
  return "other";
}

export function cpuSnapshot(): CpuSnapshot {
  const snapshot = new Map<number, { group: CpuGroup; seconds: number }>();
  if (!existsSync("/proc/self/stat")) return snapshot;
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which may hold spaces: state is the first, utime the 12th, stime the 13th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const seconds = (Number(fields[11]) + Number(fields[12])) / clockTicks;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      snapshot.set(pid, { group: groupOf(pid, cmdline), seconds });
    } catch {
      // the process ended between the listing and the read
    }
  }
  return snapshot;
}

/** CPU seconds per group between `before` and `after` (a process that started in between counts from zero). */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): Record<CpuGroup, number> {
  const totals: Record<CpuGroup, number> = { "this process (functions)": 0, emulator: 0, "python workers": 0, other: 0 };
  for (const [pid, now] of after) totals[now.group] += now.seconds - (before.get(pid)?.seconds ?? 0);
  return totals;
}
