// The completion scripts `telepod completion <shell>` prints. Each only hands the words typed so
// far to `telepod __complete -- <words...> <current word>` and offers what it prints: one
// candidate per line, `value<TAB>description` (fish and zsh show the description), or the one
// line `:files` for "complete a file name". Errors of that command go to /dev/null.
import { FILES_DIRECTIVE } from './candidates.ts';

/** The shells there is a completion script for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
/** One of SHELLS. */
export type Shell = (typeof SHELLS)[number];

// The words come from the line up to the cursor, split at blanks only: COMP_WORDS also splits
// at COMP_WORDBREAKS (`=`, `:`), and readline replaces only the text after the last of those,
// so that part of the current word is cut off the candidates.
const bash = `# bash completion for telepod: source <(telepod completion bash)
_telepod() {
  local line=\${COMP_LINE:0:COMP_POINT} words out candidate cur pre=''
  read -ra words <<<"$line"
  [[ $line == *[[:space:]] ]] && words+=('')
  cur=\${words[\${#words[@]}-1]}
  [[ -n \${COMP_WORDBREAKS-} ]] && pre=\${cur%"\${cur##*[$COMP_WORDBREAKS]}"}
  out=$(telepod __complete -- "\${words[@]:1}" 2>/dev/null)
  COMPREPLY=()
  if [[ $out == '${FILES_DIRECTIVE}' ]]; then
    compopt -o default
    return 0
  fi
  while IFS= read -r candidate; do
    [[ -n $candidate ]] && COMPREPLY+=("\${candidate%%$'\\t'*}")
  done <<<"$out"
  COMPREPLY=("\${COMPREPLY[@]#"$pre"}")
}
complete -F _telepod telepod
`;

// _telepod_candidates turns the output into _describe's `value:description` (a colon in the
// value escaped, so the directive too), in $reply.
const zshFiles = FILES_DIRECTIVE.replaceAll(':', '\\:');
const zsh = `#compdef telepod
# zsh completion for telepod: source <(telepod completion zsh) after compinit, or save it as
# _telepod in a folder of $fpath
compdef _telepod telepod

_telepod_candidates() {
  local line value
  reply=()
  for line in "\${(@f)$(telepod __complete -- "$@" 2>/dev/null)}"; do
    [[ -n $line ]] || continue
    value=\${line%%$'\\t'*}
    if [[ $line == *$'\\t'* ]]; then
      reply+=("\${value//:/\\\\:}:\${line#*$'\\t'}")
    else
      reply+=("\${value//:/\\\\:}")
    fi
  done
}

_telepod() {
  local -a reply
  _telepod_candidates "\${(@Q)words[2,CURRENT-1]}" "\${(Q)PREFIX}"
  if [[ \${reply[1]} == '${zshFiles}' ]]; then
    _files
  else
    _describe -t telepod telepod reply
  fi
}

if [[ $funcstack[1] == _telepod ]]; then
  _telepod "$@"
fi
`;

const fish = `# fish completion for telepod: telepod completion fish | source, or save it as
# ~/.config/fish/completions/telepod.fish
function __telepod_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l out (telepod __complete -- $words[2..-1] 2>/dev/null)
    if test "$out" = '${FILES_DIRECTIVE}'
        __fish_complete_path (commandline -ct)
    else if set -q out[1]
        printf '%s\\n' $out
    end
end
complete -c telepod -f -a '(__telepod_complete)'
`;

/** The completion script for `shell`. */
export function completionScript(shell: Shell): string {
  return { bash, zsh, fish }[shell];
}
