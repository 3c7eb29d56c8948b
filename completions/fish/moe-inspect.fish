# fish completion for moe-inspect
complete -c moe-inspect -s h -l help -d 'print usage and exit'
complete -c moe-inspect -s j -l json -d 'one JSON object per input'
complete -c moe-inspect -s m -l metadata -d 'print metadata and side JSON files'
complete -c moe-inspect -s t -l tensors -d 'list every tensor'
complete -c moe-inspect -l version -d 'print version and exit'
