/**
 * The keys a phone's keyboard lacks, as the bytes a terminal sends for them:
 * Esc, Tab, the arrows (in the mode the program running asked for), and Ctrl
 * held for the next key typed.
 */

export type ExtraKey = "Esc" | "Tab" | "Up" | "Down" | "Right" | "Left";

const arrows: Record<Exclude<ExtraKey, "Esc" | "Tab">, string> = { Up: "A", Down: "B", Right: "C", Left: "D" };

/** The bytes for a key; arrows follow the application cursor mode (`ESC O A`) when the program set it. */
export function keyBytes(key: ExtraKey, applicationCursor: boolean): string {
  if (key === "Esc") return "\x1b";
  if (key === "Tab") return "\t";
  return `\x1b${applicationCursor ? "O" : "["}${arrows[key]}`;
}

/**
 * What Ctrl and a typed character send: a letter its control character
 * (Ctrl+C is 0x03), `[` `\` `]` `^` `_` `@` and space theirs, anything
 * else as typed.
 */
export function withControl(typed: string): string {
  if (typed.length !== 1) return typed;
  const upper = typed.toUpperCase();
  const code = upper.charCodeAt(0);
  if (upper === " " || upper === "@") return "\x00";
  if (code >= 0x41 && code <= 0x5f) return String.fromCharCode(code - 0x40);
  if (upper === "?") return "\x7f";
  return typed;
}
