# fish completion for moe-convert
complete -c moe-convert -s h -l help -d 'print usage and exit'
complete -c moe-convert -l version -d 'print version and exit'
