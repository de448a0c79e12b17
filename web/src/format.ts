/** How times and sizes read in the dashboard. */

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
  return `${spec.cpu} CPU · ${spec.memoryGiB} GiB · ${spec.diskGiB} GiB disk`;
}
