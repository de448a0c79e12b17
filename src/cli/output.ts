/** How the CLI prints: JSON for scripts, aligned tables for people. */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(headers: string[], rows: (string | number | undefined)[][]): void {
  const cells = [headers, ...rows.map((row) => row.map((cell) => (cell === undefined ? "" : String(cell))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  for (const row of cells) {
    process.stdout.write(
      `${row
        .map((cell, i) => (cell ?? "").padEnd(widths[i]))
        .join("  ")
        .trimEnd()}\n`,
    );
  }
}

export function printFields(fields: [string, string | number | boolean | undefined][]): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [key, value] of fields) {
    if (value === undefined || value === "") continue;
    process.stdout.write(`${`${key}:`.padEnd(width + 2)}${value}\n`);
  }
}

/** Examples for under a command's help (`addHelpText("after", examples(...))`). */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  ${line}`).join("\n")}\n`;
}

/** "3m", "2h", "5d": how long ago an ISO time was. */
export function age(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const units: [number, string][] = [
    [86_400, "d"],
    [3_600, "h"],
    [60, "m"],
  ];
  for (const [size, unit] of units) if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  return `${seconds}s`;
}
