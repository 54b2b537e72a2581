# bash completion for bartlctl(1). Instance names come from the running bartld instances
# (bartlctl instances --json) and from /etc/bartl/*.toml; backup ids from bartlctl backups.

_bartlctl_instances() {
    local names
    names=$(bartlctl instances --json 2>/dev/null | sed -n 's/^ *"instance": "\(.*\)",$/\1/p')
    names+=" "$(for f in /etc/bartl/*.toml; do [ -e "$f" ] && basename "$f" .toml; done)
    echo "$names"
}

_bartlctl_backup_ids() {
    local inst=$1
    bartlctl ${inst:+-i "$inst"} backups --json 2>/dev/null | sed -n 's/^ *"id": "\(.*\)",$/\1/p'
}

_bartlctl() {
    local cur prev words cword
    _init_completion || return
    local verbs="status backup backups verify plan history instances adopt restore-from"
    local verb="" inst="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -i|--instance) inst=${words[i + 1]}; ((i++)) ;;
            -c|--config) ((i++)) ;;
            -*) ;;
            *) [ -z "$verb" ] && verb=${words[i]} ;;
        esac
    done
    case $prev in
        -i|--instance) COMPREPLY=($(compgen -W "$(_bartlctl_instances)" -- "$cur")); return ;;
        -c|--config) _filedir toml; return ;;
    esac
    if [ -z "$verb" ]; then
        COMPREPLY=($(compgen -W "$verbs -i --instance --json --help --version" -- "$cur"))
        return
    fi
    case $verb in
        backup) COMPREPLY=($(compgen -W "--wait --json" -- "$cur")) ;;
        verify) COMPREPLY=($(compgen -W "--json $(_bartlctl_backup_ids "$inst")" -- "$cur")) ;;
        restore-from) COMPREPLY=($(compgen -W "--clear -c --config --json $(_bartlctl_backup_ids "$inst")" -- "$cur")) ;;
        adopt) COMPREPLY=($(compgen -W "-c --config --json" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
    esac
} &&
    complete -F _bartlctl bartlctl
