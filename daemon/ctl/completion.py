"""``completion bash|zsh``: a completion script generated from the parser itself.

Both scripts share one table (shell ``case`` functions) from a command path to the
subcommands and to the flags that may follow it; a word that starts with ``-`` completes
flags, any other word subcommands. Flags with fixed values (``-o``) complete those values.
The table is built from argparse's own declarations, so it cannot drift from the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from daemon.ctl.command import Invocation


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _words(parser: argparse.ArgumentParser, flags: bool) -> list[str]:
    """The subcommands of ``parser``, or (``flags``) its long options."""
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words.extend([] if flags else action.choices)
        elif flags:
            words.extend(o for o in action.option_strings if o.startswith("--"))
    return words


def _choices(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, sub in _walk(parser):
        for action in sub._actions:
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                for option in action.option_strings:
                    found[option] = [str(c) for c in action.choices]
    return found


def _case(function: str, rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = [f"{function}() {{", '    case "$1" in']
    lines += [f'        "{key}") echo "{" ".join(words)}" ;;' for key, words in rows]
    return [*lines, "        *) return 1 ;;", "    esac", "}", ""]


def _table(parser: argparse.ArgumentParser) -> str:
    paths = list(_walk(parser))
    lines = _case("_tocsinctl_words", [(" ".join(p), _words(sub, False)) for p, sub in paths])
    lines += _case("_tocsinctl_flags", [(" ".join(p), _words(sub, True)) for p, sub in paths])
    lines += _case("_tocsinctl_choices", sorted(_choices(parser).items()))
    return "\n".join(lines)


_BASH = """\
# bash completion for tocsinctl. Load it with: source <(tocsinctl completion bash)
{table}
_tocsinctl() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local path="" word i values
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        if _tocsinctl_words "${{path:+$path }}$word" >/dev/null; then
            path="${{path:+$path }}$word"
        fi
    done
    if values=$(_tocsinctl_choices "$prev"); then
        mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")
        return
    fi
    if [[ "$cur" == -* ]]; then
        values=$(_tocsinctl_flags "$path")
    else
        values=$(_tocsinctl_words "$path")
    fi
    mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")
}}
complete -o default -F _tocsinctl tocsinctl
"""

_ZSH = """\
#compdef tocsinctl
# zsh completion for tocsinctl. Load it (after compinit) with:
#   source <(tocsinctl completion zsh)
{table}
_tocsinctl() {{
    local path_="" word i values
    for ((i = 2; i < CURRENT; i++)); do
        word="${{words[i]}}"
        [[ "$word" == -* ]] && continue
        if _tocsinctl_words "${{path_:+$path_ }}$word" >/dev/null; then
            path_="${{path_:+$path_ }}$word"
        fi
    done
    if values=$(_tocsinctl_choices "${{words[CURRENT-1]}}"); then
        compadd -- ${{=values}}
        return
    fi
    if [[ "$PREFIX" == -* ]]; then
        compadd -- ${{=$(_tocsinctl_flags "$path_")}}
    else
        compadd -- ${{=$(_tocsinctl_words "$path_")}}
    fi
}}
compdef _tocsinctl tocsinctl
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``)."""
    template = _BASH if shell == "bash" else _ZSH
    return template.format(table=_table(parser))


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], root: argparse.ArgumentParser
) -> None:
    def run(inv: Invocation) -> int:
        inv.out.write(script(root, inv.args.shell))
        return 0

    parser = commands.add_parser(
        "completion",
        help="Print a shell completion script (bash or zsh).",
        description="Print a shell completion script. bash: source <(tocsinctl completion "
        "bash); zsh: source <(tocsinctl completion zsh) after compinit.",
    )
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    parser.set_defaults(run=run, flags=())
