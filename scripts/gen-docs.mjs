// Writes the man page and the bash completion from the one table of commands
// and options (cli/options.ts, compiled to dist/) and the exit table
// (lib/errors.ts): build/doc/limiter.8 and build/completions/limiter.
// Usage: node scripts/gen-docs.mjs <version> <date>
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { COMMANDS, GLOBAL_OPTIONS, parseFlags } = await import(join(root, 'dist/cli/options.js'));
const { EXIT_STATUS } = await import(join(root, 'dist/lib/errors.js'));
const [version, date] = process.argv.slice(2);

/** roff: hyphens in option names are minus signs. */
const dash = (text) => text.replace(/-/g, '\\-');
const valueName = (value) => value.replace(/^[<[]|\.\.\.|[>\]]$/g, '');

function optionWords(o) {
  const { long, value } = parseFlags(o.flags);
  return value ? `\\fB${dash(long)}\\fR \\fI${valueName(value)}\\fR` : `\\fB${dash(long)}\\fR`;
}

function synopsis(command) {
  const groups = command.oneOf ?? [];
  const grouped = new Set(groups.flat());
  const words = [`\\fBlimiter ${command.name}\\fR`];
  for (const o of command.options) {
    const { long } = parseFlags(o.flags);
    const group = groups.find((g) => g[0] === long);
    if (group) {
      const members = group.map((name) => command.options.find((x) => parseFlags(x.flags).long === name));
      words.push(`( ${members.map(optionWords).join(' | ')} )`);
    } else if (!grouped.has(long)) {
      words.push(o.required ? optionWords(o) : `[${optionWords(o)}]`);
    }
  }
  if (command.argument) words.push(`\\fB\\-\\-\\fR \\fI${valueName(command.argument.spec)}\\fR ...`);
  return words.join(' ');
}

function optionItems(options) {
  return options
    .map((o) => {
      const { short, long, value } = parseFlags(o.flags);
      const names = [short, long]
        .filter(Boolean)
        .map((n) => `\\fB${dash(n)}\\fR`)
        .join(', ');
      const text = o.description + (o.default !== undefined ? ` (default: ${o.default})` : '');
      return `.TP\n${names}${value ? ` \\fI${valueName(value)}\\fR` : ''}\n${text[0].toUpperCase()}${text.slice(1)}.`;
    })
    .join('\n');
}

function manPage() {
  const sections = {
    SYNOPSIS: COMMANDS.map(synopsis).join('\n.br\n'),
    COMMANDS: COMMANDS.map((c) => `.SS ${c.name}\n${c.manual}\n${optionItems(c.options)}`).join('\n'),
    OPTIONS: optionItems(GLOBAL_OPTIONS),
    'EXIT STATUS': EXIT_STATUS.map((s) => `.TP\n.B ${s.code}\n${s.meaning}`).join('\n'),
  };
  let text = readFileSync(join(root, 'doc/limiter.8.in'), 'utf8');
  for (const [name, body] of Object.entries(sections)) {
    const marker = new RegExp(`^\\.\\\\" @${name}@.*$`, 'm');
    if (!marker.test(text)) throw new Error(`doc/limiter.8.in has no @${name}@ marker`);
    text = text.replace(marker, () => body);
  }
  return text.replace('@VERSION@', version).replace('@DATE@', date);
}

function completion() {
  const names = (options) =>
    options.flatMap((o) => Object.values(parseFlags(o.flags)).filter((n) => n?.startsWith('-')));
  const byKind = (kind) => [...new Set(COMMANDS.flatMap((c) => names(c.options.filter((o) => o.complete === kind))))];
  const cases = [
    ['pid', 'COMPREPLY=($(compgen -W "$(command ps -e -o pid= 2>/dev/null)" -- "$cur"))'],
    ['directory', '_filedir -d'],
    ['object', '_filedir o'],
    ['file', '_filedir'],
    [
      'unit',
      "COMPREPLY=($(compgen -W \"$(command find /sys/fs/cgroup -maxdepth 6 -type d \\( -name '*.service' -o -name '*.scope' -o -name '*.slice' \\) -printf '%f\\n' 2>/dev/null | sort -u)\" -- \"$cur\"))",
    ],
    ['none', ':'],
  ]
    .filter(([kind]) => byKind(kind).length > 0)
    .map(([kind, action]) => `    ${byKind(kind).join(' | ')})\n        ${action}\n        return\n        ;;`)
    .join('\n');
  const commandNames = COMMANDS.map((c) => c.name);
  const perCommand = COMMANDS.map(
    (c) => `    ${c.name}) options="${[...names(c.options), ...(c.argument ? ['--'] : [])].join(' ')}" ;;`,
  ).join('\n');
  return `# bash completion for limiter(8), generated from cli/options.ts
_limiter()
{
    local cur prev words cword
    _init_completion || return

    local commands="${commandNames.join(' ')}"
    local command="" i
    for ((i = 1; i < cword; i++)); do
        case \${words[i]} in
        ${commandNames.join(' | ')})
            command=\${words[i]}
            break
            ;;
        esac
    done

    case $prev in
${cases}
    esac

    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "$commands ${names(GLOBAL_OPTIONS).join(' ')}" -- "$cur"))
        return
    fi

    local options=""
    case $command in
${perCommand}
    esac
    COMPREPLY=($(compgen -W "$options --help" -- "$cur"))
} &&
    complete -F _limiter limiter
`;
}

mkdirSync(join(root, 'build/doc'), { recursive: true });
mkdirSync(join(root, 'build/completions'), { recursive: true });
writeFileSync(join(root, 'build/doc/limiter.8'), manPage());
writeFileSync(join(root, 'build/completions/limiter'), completion());
