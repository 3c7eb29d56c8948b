# fish completion for moe-run
complete -c moe-run -s h -l help -d 'print usage and exit'
complete -c moe-run -l version -d 'print version and exit'
