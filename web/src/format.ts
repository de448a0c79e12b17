/** How times and sizes read in the dashboard. */

import { cpuCount } from "../../src/core/environment.js";

const units: [number, string][] = [
  [86_400, "d"],
  [3_600, "h"],
  [60, "m"],
];

/** "3m", "2h", "5d": how long ago, compact for tables. */
export function age(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  for (const [size, unit] of units) if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  return `${seconds}s`;
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function time(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour12: false });
}

export function resources(spec: { cpu: number; memoryGiB: number; diskGiB: number }): string {
  return `${cpuCount(spec.cpu)} · ${spec.memoryGiB} GiB · ${spec.diskGiB} GiB disk`;
}

/** "0.4 s", "12 s", "3 min 5 s", "2 h 5 min": how long something took, as precise as is worth reading. */
export function duration(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d`;
}
