# fish completion for moe-quantize
complete -c moe-quantize -s h -l help -d 'print usage and exit'
complete -c moe-quantize -l version -d 'print version and exit'
