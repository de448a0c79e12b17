/**
 * The commands' own kind of commander Command, for how a mistake in what was
 * typed is answered: commander prints its message and then the whole help;
 * cvm says what is wrong in one line (which argument is missing, which
 * command was meant), the usage line, and where the help is. A word that is
 * not a command is one, even where a group has a default command that would
 * otherwise read it as an extra argument ("too many arguments" for `cvm env
 * lsit`).
 */

import { Command, type ErrorOptions } from "commander";

/** Optimal string alignment distance: edits, with a swap of two neighbours counting as one. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidates closest to a mistyped word: within a third of its length (at least one edit). */
export function closest(word: string, candidates: readonly string[]): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3));
  const scored = candidates.map((candidate) => ({ candidate, d: distance(word, candidate) }));
  const best = Math.min(...scored.map((s) => s.d));
  return best > limit ? [] : scored.filter((s) => s.d === best).map((s) => s.candidate);
}

export class CvmCommand extends Command {
  override createCommand(name?: string): CvmCommand {
    return new CvmCommand(name);
  }

  /** `cvm env start`: how the user reaches this command. */
  path(): string {
    const names: string[] = [];
    for (let command: Command | null = this; command; command = command.parent) names.unshift(command.name());
    return names.join(" ");
  }

  /** The visible subcommands' names and aliases. */
  private commandNames(): string[] {
    return this.createHelp()
      .visibleCommands(this)
      .flatMap((command) => [command.name(), ...command.aliases()])
      .filter((name) => name !== "help");
  }

  private unknownCommandMessage(word: string): string {
    const names = this.commandNames();
    const near = closest(word, names);
    const suggestion = near.length > 0 ? ` Did you mean ${near.join(" or ")}?` : "";
    return `${this.path()}: "${word}" is not a command.${suggestion}\nCommands: ${names.join(", ")}\nSee ${this.path()} --help`;
  }

  /** Whether the parent ran this command as its default, for a word that was not a command name. */
  private ranAsDefault(): boolean {
    const parent = this.parent;
    if (!parent || parent.args.length === 0) return false;
    return ![this.name(), ...this.aliases()].includes(parent.args[0]);
  }

  private explain(message: string, code: string): string {
    const usage = `Usage: ${this.path()} ${this.usage()}`;
    const seeHelp = `See ${this.path()} --help`;
    if (code === "commander.missingArgument") {
      const missing = this.registeredArguments.find((argument, i) => argument.required && this.args[i] === undefined);
      const what = missing?.description ? `, ${missing.description}` : "";
      return `${this.path()}: missing <${missing?.name() ?? "argument"}>${what}\n${usage}\n${seeHelp}`;
    }
    if (code === "commander.unknownCommand" || (code === "commander.excessArguments" && this.commands.length > 0)) {
      return this.unknownCommandMessage(this.args[0]);
    }
    if (code === "commander.excessArguments" && this.parent && this.ranAsDefault()) {
      return (this.parent as CvmCommand).unknownCommandMessage(this.args[0]);
    }
    if (code === "commander.excessArguments") {
      const extra = this.args.slice(this.registeredArguments.length).join(" ");
      return `${this.path()}: unexpected "${extra}"\n${usage}\n${seeHelp}`;
    }
    // commander's own message for the rest (an unknown option, with its suggestion; a missing value).
    return `${this.path()}: ${message.replace(/^error: /, "").replace(/\n\(Did you mean (.+)\?\)$/, ". Did you mean $1?")}\n${seeHelp}`;
  }

  override error(message: string, options?: ErrorOptions): never {
    const code = options?.code ?? "commander.error";
    this.showHelpAfterError(false);
    return super.error(this.explain(message, code), options);
  }
}
